use super::*;

/// Parses and prints back; `want` is the canonical form.
#[track_caller]
fn check(input: &str, want: &str) {
    match parse(input) {
        Ok(e) => assert_eq!(e.to_string(), want, "input: {input}"),
        Err(e) => panic!("{input}: {e}"),
    }
}

#[track_caller]
fn check_err(input: &str, want: &str) {
    match parse(input) {
        Ok(e) => panic!("{input}: parsed as {e}, want error {want}"),
        Err(e) => assert!(
            e.to_string().contains(want),
            "{input}: got {e}, want {want}"
        ),
    }
}

#[test]
fn literals() {
    check("1", "1");
    check("0x1f", "31");
    check("1e3", "1000");
    check("-1.5", "-1.5");
    check("+Inf", "+Inf");
    check("-inf", "-Inf");
    check("NaN", "NaN");
    check(".5", "0.5");
    check(r#""a\"b""#, r#""a\"b""#);
    check("'single'", r#""single""#);
    check("`raw\\n`", r#""raw\\n""#);
    check("1 # trailing comment", "1");
}

#[test]
fn selectors() {
    check("up", "up");
    check(
        r#"up{job="a",instance!="b",x=~"c.*",y!~"d",}"#,
        r#"up{job="a", instance!="b", x=~"c.*", y!~"d"}"#,
    );
    check(r#"{__name__=~"up|down"}"#, r#"{__name__=~"up|down"}"#);
    check("foo:bar_total[5m]", "foo:bar_total[5m]");
    check("x[1h30m]", "x[1h30m]");
    check("x offset 5m", "x offset 5m");
    check("x offset -5m", "x offset -5m");
    check("x[5m] offset 1h", "x[5m] offset 1h");
    check("x @ 100", "x @ 100.000");
    check("x @ start()", "x @ start()");
    check("x[1m] @ end() offset 1m", "x[1m] @ end() offset 1m");
    check("x offset 1m @ 10.5", "x @ 10.500 offset 1m");
    check("x[5m:1m]", "x[5m:1m]");
    check("rate(x[5m])[30m:]", "rate(x[5m])[30m:]");
    check("x[5m:] offset 1m", "x[5m:] offset 1m");
}

#[test]
fn operators() {
    check("1 + 2 * 3", "1 + 2 * 3");
    check("a + b * c", "a + b * c");
    check("(a + b) * c", "(a + b) * c");
    check("a - b - c", "a - b - c");
    check("2 ^ 3 ^ 2", "2 ^ 3 ^ 2");
    check("a or b and c", "a or b and c");
    check("a > bool 1", "a > bool 1");
    check(
        "a == on(x, y) group_left(z) b",
        "a == on(x, y) group_left(z) b",
    );
    check(
        "a * ignoring(x) group_right b",
        "a * ignoring(x) group_right() b",
    );
    check("a and on() b", "a and on() b");
    check("a unless ignoring(x) b", "a unless ignoring(x) b");
    check("-a", "-a");
    check("- - 1", "1");
    check("1 - -1", "1 - -1");
    check("a atan2 b", "a atan2 b");
    check("a AND b", "a and b");
}

#[test]
fn precedence_shapes() {
    // `^` is right-associative and binds tighter than unary minus.
    let e = parse("-2 ^ 2").unwrap();
    assert!(
        matches!(e, Expr::NumberLiteral(_))
            || matches!(e, Expr::Unary(_))
            || matches!(e, Expr::BinaryExpr(_))
    );
    match parse("2 ^ 3 ^ 2").unwrap() {
        Expr::BinaryExpr(b) => assert!(matches!(*b.rhs, Expr::BinaryExpr(_))),
        e => panic!("{e:?}"),
    }
    match parse("1 - 2 - 3").unwrap() {
        Expr::BinaryExpr(b) => assert!(matches!(*b.lhs, Expr::BinaryExpr(_))),
        e => panic!("{e:?}"),
    }
    match parse("-x ^ 2").unwrap() {
        Expr::Unary(e) => assert!(matches!(*e, Expr::BinaryExpr(_))),
        e => panic!("{e:?}"),
    }
}

#[test]
fn aggregations_and_calls() {
    check("sum(x)", "sum(x)");
    check("sum by (a, b) (x)", "sum by (a, b) (x)");
    check("sum(x) by (a)", "sum by (a) (x)");
    check("avg without (a) (x)", "avg without (a) (x)");
    check("SUM(x) WITHOUT (instance,)", "sum without (instance) (x)");
    check("topk(3, x)", "topk(3, x)");
    check("quantile(0.9, x)", "quantile(0.9, x)");
    check("count_values(\"v\", x)", "count_values(\"v\", x)");
    check("sum by () (x)", "sum(x)");
    check("rate(x[5m])", "rate(x[5m])");
    check("changes((x[5m]))", "changes((x[5m]))");
    check("round(x)", "round(x)");
    check("round(x, 5)", "round(x, 5)");
    check(
        "label_join(x, \"d\", \",\", \"a\", \"b\")",
        "label_join(x, \"d\", \",\", \"a\", \"b\")",
    );
    check("label_join(x, \"d\", \",\")", "label_join(x, \"d\", \",\")");
    check("time()", "time()");
    check("day_of_month()", "day_of_month()");
    check(
        "histogram_quantile(0.9, sum by (le) (rate(b[5m])))",
        "histogram_quantile(0.9, sum by (le) (rate(b[5m])))",
    );
    check("sum by (on, and) (x)", "sum by (on, and) (x)");
}

/// Errors whose position and text were checked against Prometheus 2.42's `/api/v1/query`.
#[test]
fn errors_as_prometheus() {
    for (q, want) in [
        (
            "rate(foo)",
            "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector",
        ),
        (
            "label_replace(x, \"a\", 1, \"c\", \"d\")",
            "1:23: parse error: expected type string in call to function \"label_replace\", got scalar",
        ),
        (
            "round(x, \"a\")",
            "1:10: parse error: expected type scalar in call to function \"round\", got string",
        ),
        (
            "abs(rate(x[5m]), foo)",
            "1:1: parse error: expected 1 argument(s) in call to \"abs\", got 2",
        ),
        ("foo[5x]", "1:5: parse error: bad duration syntax: \"5\""),
        ("foo[5mx]", "1:5: parse error: bad duration syntax: \"5mx\""),
        (
            "foo[5m:1x]",
            "1:8: parse error: bad number or duration syntax: \"1\"",
        ),
        (
            "5x",
            "1:1: parse error: bad number or duration syntax: \"5\"",
        ),
        (
            "5mx",
            "1:1: parse error: bad number or duration syntax: \"5mx\"",
        ),
        (
            "0x1g",
            "1:1: parse error: bad number or duration syntax: \"0x1\"",
        ),
        (
            "foo offset 5x",
            "1:12: parse error: bad number or duration syntax: \"5\"",
        ),
        (
            "foo @ bar",
            "1:7: parse error: unexpected identifier \"bar\" in @, expected timestamp",
        ),
        (
            "sum by (a) (foo) by (b)",
            "1:18: parse error: unexpected <by>",
        ),
        (
            "foo{a=\"b\",}}",
            "1:12: parse error: unexpected character: '}'",
        ),
        ("}", "1:1: parse error: unexpected character: '}'"),
        ("foo[1m:5m:1m]", "1:10: parse error: unexpected colon ':'"),
        ("foo)", "1:5: parse error: unexpected right parenthesis ')'"),
        (
            "x[5]",
            "1:3: parse error: missing unit character in duration",
        ),
        ("2.5.", "1:4: parse error: unexpected character: '.'"),
        (
            "foo{a=~\"(\"}",
            "1:5: parse error: error parsing regexp: missing closing ): `^(?:()$`",
        ),
        ("1 +", "1:4: parse error: unexpected end of input"),
    ] {
        match super::parse(q) {
            Ok(e) => panic!("{q}: parsed as {e:?}"),
            Err(e) => assert_eq!(e.to_string(), want, "{q}"),
        }
    }
}

#[test]
fn errors() {
    check_err("", "no expression found in input");
    check_err(
        "rate(x)",
        "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector",
    );
    check_err("foo(x)", "unknown function with name \"foo\"");
    check_err(
        "abs(x, y)",
        "expected 1 argument(s) in call to \"abs\", got 2",
    );
    check_err(
        "round(x, 1, 2)",
        "expected at most 2 argument(s) in call to \"round\", got 3",
    );
    check_err("label_join(x, \"d\")", "expected at least 3 argument(s)");
    check_err(
        "1 == 1",
        "comparisons between scalars must use BOOL modifier",
    );
    check_err(
        "1 and x",
        "set operator \"and\" not allowed in binary scalar expression",
    );
    check_err(
        "a + bool b",
        "bool modifier can only be used on comparisons",
    );
    check_err(
        "a and on(x) group_left b",
        "no grouping allowed for \"and\" operation",
    );
    check_err(
        "a + on(x) group_left(x) b",
        "label \"x\" must not occur in ON and GROUP clause at once",
    );
    check_err(
        "1 + on(x) b",
        "vector matching only allowed between instant vectors",
    );
    check_err(
        "x[5m] + 1",
        "binary expression must contain only scalar and instant vector types",
    );
    check_err(
        "sum(x[5m])",
        "expected type instant vector in aggregation expression, got range vector",
    );
    check_err(
        "topk(x)",
        "wrong number of arguments for aggregate expression provided, expected 2, got 1",
    );
    check_err("sum()", "no arguments for aggregate expression provided");
    check_err("sum(a, b)", "expected 1, got 2");
    check_err(
        "topk(\"a\", x)",
        "expected type scalar in aggregation parameter, got string",
    );
    check_err("x[5m][5m]", "ranges only allowed for vector selectors");
    check_err(
        "x[5m][5m:]",
        "subquery is only allowed on instant vector, got range vector",
    );
    check_err(
        "x offset 1m offset 2m",
        "offset may not be set multiple times",
    );
    check_err("x @ 1 @ 2", "@ <timestamp> may not be set multiple times");
    check_err(
        "(x) offset 1m",
        "offset modifier must be preceded by an instant vector selector",
    );
    check_err(
        "x offset 1m [5m]",
        "no offset or @ modifiers allowed before range",
    );
    check_err(
        "{}",
        "vector selector must contain at least one non-empty matcher",
    );
    check_err(
        r#"{a=~".*"}"#,
        "vector selector must contain at least one non-empty matcher",
    );
    check_err(
        r#"foo{__name__="bar"}"#,
        "metric name must not be set twice",
    );
    check_err(r#"x{a=~"("}"#, "error parsing regexp");
    // Go's words, as Prometheus answers (see `parser::re2`).
    check_err(
        r#"x{a=~"[b-a]"}"#,
        "1:3: parse error: error parsing regexp: invalid character class range: `b-a`",
    );
    check_err(
        "x{a=1}",
        "unexpected number \"1\" in label matching, expected string",
    );
    check_err("*1", "1:1: parse error: unexpected <op:*>");
    check_err("(1))", "1:5: parse error: unexpected right parenthesis ')'");
    check_err("((1)", "1:5: parse error: unclosed left parenthesis");
    check_err(".", "unexpected character: '.'");
    check_err("2.5.", "1:4: parse error: unexpected character: '.'");
    check_err("1 !~ 1", "unexpected character after '!': '~'");
    check_err("1 =~ 1", "unexpected character after '=': '~'");
    check_err("x{a=\"b\"", "unexpected end of input inside braces");
    check_err("x[5m", "unclosed left bracket");
    check_err(
        "sum without(==)(x)",
        "unexpected <op:==> in grouping opts, expected label",
    );
    check_err(
        "sum x by (test)",
        "unexpected identifier \"x\" in aggregation, expected \"(\"",
    );
    check_err(
        "x{a=\"very long string value\"} 1",
        "unexpected number \"1\"",
    );
    check_err(
        "x{a=\"b\"} \"a long string literal\"",
        "unexpected string \"\\\"a long st\"...",
    );
    check("sum", "sum");
    check_err("1 +", "1:4: parse error: unexpected end of input");
    check_err(
        "x[5]",
        "1:3: parse error: missing unit character in duration",
    );
    check_err(
        "-\"a\"",
        "unary expression only allowed on expressions of type scalar or instant vector",
    );
    check_err("(1", "1:3: parse error: unclosed left parenthesis");
    check_err("x\n  +", "2:4: parse error: unexpected end of input");
    check_err("1 1", "1:3: parse error: unexpected number");
    check("foo * sum", "foo * sum");
    check("sum offset 5m", "sum offset 5m");
    check("count and sum", "count and sum");
    check("sum{a=\"b\"} + count", "sum{a=\"b\"} + count");
    check("offset{step=\"1s\"}[5m]", "offset{step=\"1s\"}[5m]");
    check(
        "step{offset=\"1s\"}[5m] offset 1m",
        "step{offset=\"1s\"}[5m] offset 1m",
    );
    check_err(
        "a - on(b) ignoring(c) d",
        "1:11: parse error: unexpected <ignoring>",
    );
    check_err(
        "1 offset 1d",
        "1:1: parse error: offset modifier must be preceded",
    );
    check_err(
        "foo offset 1s offset 2s",
        "1:1: parse error: offset may not be set multiple times",
    );
    check_err("and", "unexpected <op:and>");
    check_err(
        "1 + on(x) b",
        "1:1: parse error: vector matching only allowed between instant vectors",
    );
    check("1 + on() b", "1 + b");
    check_err(
        "1 and 1",
        "1:1: parse error: set operator \"and\" not allowed in binary scalar expression",
    );
    check_err(
        "1 == 1",
        "1:3: parse error: comparisons between scalars must use BOOL modifier",
    );
    check_err(
        "1 + x[5m]",
        "1:5: parse error: binary expression must contain only scalar",
    );
    check_err(
        "a and on(x) group_left b",
        "1:1: parse error: no grouping allowed for \"and\" operation",
    );
}

#[test]
fn helpers() {
    assert_eq!(parse_duration("1h30m"), Some(5_400_000));
    assert_eq!(parse_duration("1x"), None);
    let m = parse_metric_selector(r#"up{job="a"}"#).unwrap();
    assert_eq!(m.len(), 2);
    assert!(parse_metric_selector("sum(up)").is_err());
}
