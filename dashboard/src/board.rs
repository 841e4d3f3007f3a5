//! Dashboards as files: the model of a dashboard (rows of panels with queries, units, legends,
//! thresholds and variables), loading from a folder of YAML or JSON files with the built-in
//! Nodes and Pods dashboards as embedded defaults, and the template language of queries.
//!
//! ```yaml
//! title: Nodes
//! uid: nodes                 # the URL is /d/nodes (default: the file name without extension)
//! time: 1h                   # default range
//! variables:
//!   - name: instance
//!     query: label_values(node_uname_info, instance)
//!     include_all: true      # "All" is the default and selects `.*`
//! rows:
//!   - title: CPU
//!     panels:
//!       - title: CPU by mode
//!         type: timeseries   # timeseries | stat | gauge | table | bar
//!         unit: percent      # plain bytes bytes/s percent ratio seconds ops/s
//!         stack: true
//!         width: 6           # of 12 columns
//!         queries:
//!           - expr: sum by (mode) (rate(node_cpu_seconds_total{instance=~"$instance"}[$__rate_interval]))
//!             legend: "{{mode}}"
//! ```
//!
//! Variables are substituted as `$name` or `${name}` and are meant for regex matchers (`=~"$x"`):
//! a value is regex-escaped and escaped for a PromQL string; "All" becomes `.*`. Built-ins:
//! `$__range`, `$__interval` (the query step) and `$__rate_interval` (the step plus 15 s, at least
//! 1 m, as Grafana computes it for a 15 s scrape interval).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use pharos_model::Labels;
use pharos_model::api::{QueryData, format_duration};
use serde::Deserialize;

use crate::DataSource;
use crate::chart::Unit;

/// The built-in dashboards: (file name, contents).
pub const BUILTIN: [(&str, &str); 2] = [
    ("nodes.yaml", include_str!("../dashboards/nodes.yaml")),
    ("pods.yaml", include_str!("../dashboards/pods.yaml")),
];

/// The value of a variable with `include_all` that selects every value.
pub const ALL: &str = "$__all";

/// A dashboard file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Title shown on the page and in the navigation.
    pub title: String,
    /// URL name (`/d/<uid>`); defaults to the file name without its extension.
    #[serde(default)]
    pub uid: String,
    /// One line shown under the title.
    #[serde(default)]
    pub description: String,
    /// Default time range name (`1h`).
    #[serde(default)]
    pub time: Option<String>,
    /// Variables, shown as pickers above the rows.
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// Rows of panels.
    #[serde(default)]
    pub rows: Vec<Row>,
}

/// A variable: its values come from a query, or from a custom list.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// Name used in templates (`$name`) and in the URL (`var-name`).
    pub name: String,
    /// Label of the picker; default the name.
    #[serde(default)]
    pub label: Option<String>,
    /// `label_values(metric{...}, label)`, `label_values(label)` or `query_result(expr)`.
    #[serde(default)]
    pub query: Option<String>,
    /// A fixed list of values.
    #[serde(default)]
    pub custom: Vec<String>,
    /// Keeps only values matching this regex; with a capture group, the group is the value.
    #[serde(default)]
    pub regex: Option<String>,
    /// Offer "All" (`.*`).
    #[serde(default)]
    pub include_all: bool,
    /// The value when the URL has none: a value, or `all`. Default: All if offered, else the
    /// first value.
    #[serde(default)]
    pub default: Option<String>,
}

/// A row of panels.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Title (templated: `Node $instance`).
    #[serde(default)]
    pub title: String,
    /// Repeat the row once per selected value of this variable (when "All" is selected).
    #[serde(default)]
    pub repeat: Option<String>,
    /// At most this many repeated rows (default 8; the page links to `repeat=all` for the rest,
    /// which shows up to 500).
    #[serde(default)]
    pub repeat_limit: Option<usize>,
    /// The panels, laid out left to right in a 12-column grid.
    #[serde(default)]
    pub panels: Vec<Panel>,
}

/// What a panel shows.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Lines over time (range queries).
    #[default]
    Timeseries,
    /// Big numbers (instant query), coloured by thresholds.
    Stat,
    /// Values as bars between `min` and `max`, coloured by thresholds.
    Gauge,
    /// A table: one row per series (by legend), one column per query.
    Table,
    /// Horizontal bars, largest first (instant query).
    Bar,
}

/// A panel.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    /// Title (templated).
    pub title: String,
    /// Panel type.
    #[serde(rename = "type", default)]
    pub kind: Kind,
    /// One query (shorthand for `queries: [{expr, legend}]`).
    #[serde(default)]
    pub expr: Option<String>,
    /// Legend of `expr`.
    #[serde(default)]
    pub legend: Option<String>,
    /// Queries; their series are shown together.
    #[serde(default)]
    pub queries: Vec<Query>,
    /// Unit name (see [`Unit::parse`]); default plain.
    #[serde(default)]
    pub unit: Option<String>,
    /// Stack the series (time series).
    #[serde(default)]
    pub stack: bool,
    /// Width in columns of 12 (default 6).
    #[serde(default)]
    pub width: Option<u8>,
    /// Lower end of a gauge (default 0).
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper end of a gauge (default 100, or 1 for ratios).
    #[serde(default)]
    pub max: Option<f64>,
    /// Colours from a value up: the highest threshold at or below a value colours it.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// Table: a link for each row (templated with `{{label}}` of the row's series).
    #[serde(default)]
    pub link: Option<String>,
    /// Table: the column (query name) to sort by, descending; default the first.
    #[serde(default)]
    pub sort: Option<String>,
    /// Table and bar: at most this many rows (default 50).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A query of a panel.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// PromQL (templated with variables).
    pub expr: String,
    /// Series name template: `{{label}}` is replaced by the label's value.
    #[serde(default)]
    pub legend: Option<String>,
    /// Column header in tables; default the legend or the expression.
    #[serde(default)]
    pub name: Option<String>,
    /// Unit of this query's column in tables; default the panel's.
    #[serde(default)]
    pub unit: Option<String>,
}

/// A colour threshold.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Values at or above this get the colour.
    pub value: f64,
    /// A colour name (`green`, `orange`, `red`, ...) or `#rrggbb`.
    pub color: String,
}

impl Panel {
    /// The queries of the panel (`expr` first, then `queries`).
    pub fn all_queries(&self) -> Vec<Query> {
        let mut out = Vec::new();
        if let Some(e) = &self.expr {
            out.push(Query {
                expr: e.clone(),
                legend: self.legend.clone(),
                name: None,
                unit: None,
            });
        }
        out.extend(self.queries.iter().cloned());
        out
    }

    /// The panel's unit.
    pub fn unit(&self) -> Unit {
        self.unit
            .as_deref()
            .and_then(Unit::parse)
            .unwrap_or_default()
    }

    /// The colour of `v` by the thresholds, if any applies.
    pub fn color_for(&self, v: f64) -> Option<&str> {
        self.thresholds
            .iter()
            .filter(|t| v >= t.value)
            .max_by(|a, b| a.value.total_cmp(&b.value))
            .map(|t| t.color.as_str())
    }
}

fn valid_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn valid_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

fn valid_color(s: &str) -> bool {
    match s.strip_prefix('#') {
        Some(hex) => matches!(hex.len(), 3 | 6 | 8) && hex.bytes().all(|c| c.is_ascii_hexdigit()),
        None => !s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_alphabetic()),
    }
}

impl Board {
    /// Parses a dashboard from YAML (or JSON, which is YAML) and checks it; `file_name` gives
    /// the default uid and appears in errors.
    pub fn parse(file_name: &str, text: &str) -> std::result::Result<Board, String> {
        let mut b: Board = if file_name.ends_with(".json") {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            serde_norway::from_str(text).map_err(|e| e.to_string())?
        };
        if b.uid.is_empty() {
            b.uid = file_name
                .rsplit_once('.')
                .map_or(file_name, |(stem, _)| stem)
                .to_string();
        }
        b.check()?;
        Ok(b)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if !valid_uid(&self.uid) {
            return Err(format!(
                "uid {:?} must be 1 to 64 letters, digits, '-' or '_'",
                self.uid
            ));
        }
        for v in &self.variables {
            if !valid_name(&v.name) || v.name.starts_with("__") {
                return Err(format!("variable name {:?} is not a valid name", v.name));
            }
            if v.query.is_none() && v.custom.is_empty() {
                return Err(format!(
                    "variable {:?} needs a query or custom values",
                    v.name
                ));
            }
            if let Some(q) = &v.query {
                parse_var_query(q).map_err(|e| format!("variable {:?}: {e}", v.name))?;
            }
            if let Some(r) = &v.regex {
                regex::Regex::new(r)
                    .map_err(|e| format!("variable {:?}: bad regex: {e}", v.name))?;
            }
        }
        for (ri, row) in self.rows.iter().enumerate() {
            if let Some(r) = &row.repeat
                && !self.variables.iter().any(|v| &v.name == r)
            {
                return Err(format!("row {} repeats unknown variable {r:?}", ri + 1));
            }
            for p in &row.panels {
                let at = format!("panel {:?}", p.title);
                if p.all_queries().is_empty() {
                    return Err(format!("{at} has no query"));
                }
                for u in p
                    .unit
                    .iter()
                    .chain(p.queries.iter().filter_map(|q| q.unit.as_ref()))
                {
                    if Unit::parse(u).is_none() {
                        return Err(format!(
                            "{at}: unknown unit {u:?} (plain, bytes, bytes/s, percent, ratio, \
                             seconds, ops/s)"
                        ));
                    }
                }
                if let Some(w) = p.width
                    && !(1..=12).contains(&w)
                {
                    return Err(format!("{at}: width {w} is not between 1 and 12"));
                }
                if let Some(t) = p.thresholds.iter().find(|t| !valid_color(&t.color)) {
                    return Err(format!("{at}: colour {:?} is not a name or #hex", t.color));
                }
            }
        }
        Ok(())
    }
}

/// A parsed variable query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarQuery {
    /// `label_values(selector, label)` or `label_values(label)` (selector empty).
    LabelValues {
        /// Series selector, or empty for every series with the label.
        selector: String,
        /// The label whose values are listed.
        label: String,
    },
    /// `query_result(expr)`: one value per series of the instant result (its text form).
    QueryResult(String),
}

/// Parses `label_values(...)` and `query_result(...)`.
pub fn parse_var_query(q: &str) -> std::result::Result<VarQuery, String> {
    let q = q.trim();
    let inner = |prefix: &str| {
        q.strip_prefix(prefix)
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
            .map(str::trim)
    };
    if let Some(args) = inner("label_values") {
        let (selector, label) = match args.rsplit_once(',') {
            Some((s, l)) => (s.trim(), l.trim()),
            None => ("", args),
        };
        if !valid_name(label) {
            return Err(format!("{label:?} is not a label name in {q:?}"));
        }
        return Ok(VarQuery::LabelValues {
            selector: selector.to_string(),
            label: label.to_string(),
        });
    }
    if let Some(e) = inner("query_result") {
        if e.is_empty() {
            return Err(format!("empty expression in {q:?}"));
        }
        return Ok(VarQuery::QueryResult(e.to_string()));
    }
    Err(format!(
        "{q:?} is neither label_values(selector, label) nor query_result(expr)"
    ))
}

/// A variable with its options and the selected value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The variable's name.
    pub name: String,
    /// Picker label.
    pub label: String,
    /// The values offered (without "All").
    pub options: Vec<String>,
    /// Whether "All" is offered.
    pub include_all: bool,
    /// The selected value, or [`ALL`].
    pub selected: String,
    /// Why the values could not be listed, if they could not.
    pub error: Option<String>,
}

impl Resolved {
    /// The values a repeated row iterates over: the selected one, or all options for "All".
    pub fn values(&self) -> Vec<String> {
        if self.selected == ALL {
            self.options.clone()
        } else {
            vec![self.selected.clone()]
        }
    }
}

/// Lists the values of each variable through `ds` (over `start_ms..=end_ms`) and picks the
/// selected one from `params` (`var-<name>`). Variables may use earlier variables.
pub fn resolve_variables(
    ds: &dyn DataSource,
    vars: &[Variable],
    params: &BTreeMap<String, String>,
    start_ms: i64,
    end_ms: i64,
) -> Vec<Resolved> {
    let mut out: Vec<Resolved> = Vec::new();
    for v in vars {
        let ctx = Context {
            vars: &out,
            range_ms: end_ms - start_ms,
            step_ms: 0,
        };
        let (mut options, error) = if !v.custom.is_empty() {
            (v.custom.clone(), None)
        } else {
            let q = v.query.as_deref().unwrap_or_default();
            match parse_var_query(q) {
                Ok(VarQuery::LabelValues { selector, label }) => {
                    match ds.label_values(&label, &ctx.expand(&selector), start_ms, end_ms) {
                        Ok(vals) => (vals, None),
                        Err(e) => (Vec::new(), Some(e)),
                    }
                }
                Ok(VarQuery::QueryResult(e)) => match ds.query(&ctx.expand(&e), end_ms) {
                    Ok(d) => (query_result_values(d), None),
                    Err(e) => (Vec::new(), Some(e)),
                },
                Err(e) => (Vec::new(), Some(e)),
            }
        };
        if let Some(re) = v.regex.as_deref().and_then(|r| regex::Regex::new(r).ok()) {
            options = options
                .into_iter()
                .filter_map(|o| {
                    let c = re.captures(&o)?;
                    Some(c.get(1).or_else(|| c.get(0))?.as_str().to_string())
                })
                .collect();
        }
        options.sort();
        options.dedup();
        let asked = params.get(&format!("var-{}", v.name)).cloned();
        let default = match v.default.as_deref() {
            Some("all") if v.include_all => ALL.to_string(),
            Some(d) => d.to_string(),
            None if v.include_all => ALL.to_string(),
            None => options.first().cloned().unwrap_or_default(),
        };
        let selected = match asked {
            Some(a) if a == ALL && v.include_all => a,
            Some(a) if a != ALL && !a.is_empty() => a,
            _ => default,
        };
        out.push(Resolved {
            name: v.name.clone(),
            label: v.label.clone().unwrap_or_else(|| v.name.clone()),
            options,
            include_all: v.include_all,
            selected,
            error,
        });
    }
    out
}

fn query_result_values(d: QueryData) -> Vec<String> {
    match d {
        QueryData::Vector(v) => v
            .into_iter()
            .map(|s| {
                format!(
                    "{} {}",
                    s.metric,
                    pharos_model::api::format_value(s.value.v)
                )
            })
            .collect(),
        QueryData::Matrix(m) => m.into_iter().map(|s| s.metric.to_string()).collect(),
        QueryData::Scalar(p) => vec![pharos_model::api::format_value(p.v)],
        QueryData::String(s) => vec![s.s],
    }
}

/// Escapes regex metacharacters (for a value used in `=~`).
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes a value for the inside of a double-quoted PromQL string.
pub fn promql_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// What templates are expanded with.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Resolved variables.
    pub vars: &'a [Resolved],
    /// Length of the time range in ms (`$__range`).
    pub range_ms: i64,
    /// Query step in ms (`$__interval`); 0 before it is known.
    pub step_ms: i64,
}

impl Context<'_> {
    /// The value of a variable for a query, or `None` if there is no such variable.
    fn query_value(&self, name: &str) -> Option<String> {
        let step = self.step_ms.max(1000);
        match name {
            "__range" => return Some(format_duration(self.range_ms.max(1000))),
            "__interval" => return Some(format_duration(step)),
            "__rate_interval" => return Some(format_duration((step + 15_000).max(60_000))),
            _ => {}
        }
        let v = self.vars.iter().find(|v| v.name == name)?;
        Some(if v.selected == ALL {
            ".*".to_string()
        } else {
            promql_escape(&regex_escape(&v.selected))
        })
    }

    /// The value of a variable for titles: the selected value, or `All`.
    fn text_value(&self, name: &str) -> Option<String> {
        let v = self.vars.iter().find(|v| v.name == name)?;
        Some(if v.selected == ALL {
            "All".to_string()
        } else {
            v.selected.clone()
        })
    }

    /// Expands `$name` and `${name}` in a query.
    pub fn expand(&self, s: &str) -> String {
        substitute(s, |n| self.query_value(n))
    }

    /// Expands `$name` and `${name}` in a title.
    pub fn expand_text(&self, s: &str) -> String {
        substitute(s, |n| self.text_value(n))
    }
}

/// Replaces `$name` and `${name}` with `lookup(name)`; unknown names stay as they are.
fn substitute(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, used) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let n = after
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            (&after[..n], n)
        };
        match (used > 0).then(|| lookup(name)).flatten() {
            Some(v) => {
                out.push_str(&v);
                rest = &after[used..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Expands a legend template: `{{label}}` becomes the label's value (empty if absent). Without a
/// template the series' labels are shown.
pub fn legend(template: Option<&str>, metric: &Labels) -> String {
    let Some(t) = template.filter(|t| !t.is_empty()) else {
        return metric.to_string();
    };
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push_str(metric.get(after[..end].trim()).unwrap_or(""));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The loaded dashboards and the files that could not be loaded.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Dashboards by title order (built-ins first unless replaced by a file with the same uid).
    pub boards: Vec<Arc<Board>>,
    /// `path: reason` of each file that was skipped.
    pub errors: Vec<String>,
}

impl Loaded {
    /// The dashboard with this uid.
    pub fn get(&self, uid: &str) -> Option<Arc<Board>> {
        self.boards.iter().find(|b| b.uid == uid).cloned()
    }

    /// (uid, title) of each dashboard, for the navigation.
    pub fn nav(&self) -> Vec<(String, String)> {
        self.boards
            .iter()
            .map(|b| (b.uid.clone(), b.title.clone()))
            .collect()
    }
}

/// Loads the built-in dashboards, then every `*.yaml`, `*.yml` and `*.json` of `dir` (sorted by
/// name); a file with the uid of an earlier dashboard replaces it.
pub fn load(dir: Option<&Path>) -> Loaded {
    let mut loaded = Loaded::default();
    let mut add = |b: Board| match loaded.boards.iter_mut().find(|x| x.uid == b.uid) {
        Some(slot) => *slot = Arc::new(b),
        None => loaded.boards.push(Arc::new(b)),
    };
    for (name, text) in BUILTIN {
        match Board::parse(name, text) {
            Ok(b) => add(b),
            Err(e) => tracing::error!(file = name, error = %e, "built-in dashboard is invalid"),
        }
    }
    let mut errors = Vec::new();
    if let Some(dir) = dir {
        for path in dashboard_files(dir, &mut errors) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| Board::parse(&name, &t));
            match parsed {
                Ok(b) => add(b),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping dashboard file");
                    errors.push(format!("{}: {e}", path.display()));
                }
            }
        }
    }
    loaded.errors = errors;
    loaded
}

fn dashboard_files(dir: &Path, errors: &mut Vec<String>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!("{}: cannot list the folder: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    files
}

/// Names, sizes and modification times of the files of a folder: when it changes, the
/// dashboards are loaded again.
fn fingerprint(dir: Option<&Path>) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let Some(dir) = dir else { return Vec::new() };
    let mut ignored = Vec::new();
    dashboard_files(dir, &mut ignored)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let len = m.as_ref().map_or(0, |m| m.len());
            let mtime = m.and_then(|m| m.modified().ok());
            (p, len, mtime)
        })
        .collect()
}

type Fingerprint = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

/// The dashboards of a folder, loaded at start and again whenever a file in the folder is
/// added, removed or changed (checked on each page view: one directory listing).
#[derive(Debug)]
pub struct Store {
    dir: RwLock<Option<PathBuf>>,
    state: RwLock<(Fingerprint, Arc<Loaded>)>,
}

impl Store {
    /// Loads the built-ins and the files of `dir`.
    pub fn new(dir: Option<PathBuf>) -> Store {
        let fp = fingerprint(dir.as_deref());
        let loaded = Arc::new(load(dir.as_deref()));
        Store {
            dir: RwLock::new(dir),
            state: RwLock::new((fp, loaded)),
        }
    }

    /// The folder currently read (`None`: only the built-ins).
    pub fn dir(&self) -> Option<PathBuf> {
        self.dir.read().ok().and_then(|d| d.clone())
    }

    /// Switches to another folder (on a configuration reload) and loads it at once; the
    /// dashboards of the old folder disappear.
    pub fn set_dir(&self, dir: Option<PathBuf>) {
        let fp = fingerprint(dir.as_deref());
        let loaded = Arc::new(load(dir.as_deref()));
        if let Ok(mut d) = self.dir.write() {
            *d = dir;
        }
        if let Ok(mut st) = self.state.write() {
            *st = (fp, loaded);
        }
    }

    /// The current dashboards, reloaded first if the folder changed.
    pub fn current(&self) -> Arc<Loaded> {
        let dir = self.dir();
        let fp = fingerprint(dir.as_deref());
        if let Ok(st) = self.state.read()
            && st.0 == fp
        {
            return st.1.clone();
        }
        let loaded = Arc::new(load(dir.as_deref()));
        if let Ok(mut st) = self.state.write() {
            *st = (fp, loaded.clone());
        }
        loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        let l = load(None);
        let uids: Vec<&str> = l.boards.iter().map(|b| b.uid.as_str()).collect();
        assert_eq!(uids, ["nodes", "pods"]);
        assert!(l.errors.is_empty());
        for b in &l.boards {
            assert!(!b.rows.is_empty() && !b.variables.is_empty(), "{}", b.uid);
        }
    }

    #[test]
    fn parse_errors() {
        #[track_caller]
        fn check(name: &str, text: &str, want: &str) {
            let got = Board::parse(name, text).map(|b| b.uid);
            match got {
                Ok(uid) => assert_eq!(uid, want, "{text}"),
                Err(e) => assert!(e.contains(want), "{e:?} should contain {want:?}"),
            }
        }
        check("a.yaml", "title: A\n", "a");
        check("a.json", r#"{"title": "A", "uid": "x"}"#, "x");
        check("a.yaml", "title: A\nbogus: 1\n", "unknown field `bogus`");
        check("a b.yaml", "title: A\n", "uid \"a b\"");
        check(
            "a.yaml",
            "title: A\nrows: [{panels: [{title: P}]}]\n",
            "panel \"P\" has no query",
        );
        check(
            "a.yaml",
            "title: A\nrows: [{panels: [{title: P, expr: up, unit: furlongs}]}]\n",
            "unknown unit \"furlongs\"",
        );
        check(
            "a.yaml",
            "title: A\nrows: [{panels: [{title: P, expr: up, width: 13}]}]\n",
            "width 13",
        );
        check(
            "a.yaml",
            "title: A\nrows: [{panels: [{title: P, expr: up, thresholds: [{value: 1, color: 'red;x:y'}]}]}]\n",
            "colour",
        );
        check(
            "a.yaml",
            "title: A\nvariables: [{name: x, query: 'foo(bar)'}]\n",
            "neither label_values",
        );
        check(
            "a.yaml",
            "title: A\nrows: [{repeat: y, panels: []}]\n",
            "unknown variable \"y\"",
        );
    }

    #[test]
    fn var_queries() {
        #[track_caller]
        fn check(q: &str, want: std::result::Result<VarQuery, ()>) {
            assert_eq!(parse_var_query(q).map_err(|_| ()), want, "{q}");
        }
        let lv = |s: &str, l: &str| {
            Ok(VarQuery::LabelValues {
                selector: s.into(),
                label: l.into(),
            })
        };
        check("label_values(up, job)", lv("up", "job"));
        check(
            "label_values(kube_pod_info{namespace=~\"$ns\", a=\"b\"}, pod)",
            lv("kube_pod_info{namespace=~\"$ns\", a=\"b\"}", "pod"),
        );
        check("label_values( instance )", lv("", "instance"));
        check(
            "query_result(topk(3, up))",
            Ok(VarQuery::QueryResult("topk(3, up)".into())),
        );
        check("label_values(up, 1x)", Err(()));
        check("query_result()", Err(()));
        check("values(up)", Err(()));
    }

    #[test]
    fn templates() {
        let vars = vec![
            Resolved {
                name: "node".into(),
                label: "node".into(),
                options: vec![],
                include_all: true,
                selected: ALL.into(),
                error: None,
            },
            Resolved {
                name: "pod".into(),
                label: "pod".into(),
                options: vec![],
                include_all: false,
                selected: "a.b\"c".into(),
                error: None,
            },
        ];
        let ctx = Context {
            vars: &vars,
            range_ms: 3_600_000,
            step_ms: 15_000,
        };
        #[track_caller]
        fn check(ctx: &Context<'_>, s: &str, want: &str) {
            assert_eq!(ctx.expand(s), want, "{s}");
        }
        check(&ctx, "x{n=~\"$node\"}", "x{n=~\".*\"}");
        check(&ctx, "x{p=~\"${pod}\"}", "x{p=~\"a\\\\.b\\\"c\"}");
        check(&ctx, "rate(x[$__rate_interval])", "rate(x[1m])");
        check(
            &ctx,
            "avg_over_time(x[$__range]) $__interval",
            "avg_over_time(x[1h]) 15s",
        );
        check(
            &ctx,
            "$nodes $ ${unknown} $1 ${",
            "$nodes $ ${unknown} $1 ${",
        );
        assert_eq!(ctx.expand_text("Node $node / $pod"), "Node All / a.b\"c");

        let m = Labels::from_pairs(&[("mode", "user"), ("cpu", "0")]);
        assert_eq!(legend(Some("{{mode}} cpu{{ cpu }}{{x}}"), &m), "user cpu0");
        assert_eq!(legend(None, &m), m.to_string());
        assert_eq!(legend(Some("{{mode"), &m), "{{mode");
    }

    #[test]
    fn thresholds_pick_the_highest_reached() {
        let p: Panel = serde_norway::from_str(
            "title: t\nexpr: up\nthresholds: [{value: 90, color: red}, {value: 0, color: green}, {value: 70, color: orange}]",
        )
        .unwrap();
        assert_eq!(p.color_for(50.0), Some("green"));
        assert_eq!(p.color_for(75.0), Some("orange"));
        assert_eq!(p.color_for(95.0), Some("red"));
        assert_eq!(p.color_for(-1.0), None);
    }

    #[test]
    fn folder_loading_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Some(dir.path().to_path_buf()));
        assert_eq!(store.current().boards.len(), 2);
        std::fs::write(dir.path().join("mine.yaml"), "title: Mine\n").unwrap();
        std::fs::write(dir.path().join("bad.yml"), "title: [\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        // Replaces the built-in Nodes dashboard.
        std::fs::write(
            dir.path().join("n.json"),
            r#"{"title": "My nodes", "uid": "nodes"}"#,
        )
        .unwrap();
        let l = store.current();
        assert_eq!(
            l.nav(),
            [
                ("nodes".to_string(), "My nodes".to_string()),
                ("pods".into(), "Pods".into()),
                ("mine".into(), "Mine".into())
            ]
        );
        assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
        assert!(l.errors[0].contains("bad.yml"), "{:?}", l.errors);
        std::fs::remove_file(dir.path().join("mine.yaml")).unwrap();
        assert!(store.current().get("mine").is_none());
        let missing = load(Some(&dir.path().join("nope")));
        assert_eq!(missing.errors.len(), 1);
    }

    #[test]
    fn set_dir_switches_folders() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(a.path().join("a.yaml"), "title: From A\n").unwrap();
        std::fs::write(b.path().join("b.yaml"), "title: From B\n").unwrap();
        let store = Store::new(None);
        assert_eq!(store.current().boards.len(), 2);
        store.set_dir(Some(a.path().to_path_buf()));
        assert!(store.current().get("a").is_some());
        store.set_dir(Some(b.path().to_path_buf()));
        let l = store.current();
        assert!(l.get("a").is_none() && l.get("b").is_some());
        assert_eq!(store.dir().as_deref(), Some(b.path()));
        store.set_dir(None);
        assert_eq!(store.current().boards.len(), 2);
    }
}
