//! `pharos-query`: PromQL for Pharos — the parser, the evaluation engine and the Prometheus HTTP
//! API router.
//!
//! - [`parser::parse`] turns a query into an [`ast::Expr`] (Prometheus 2.42 grammar and type
//!   checks, errors with positions);
//! - [`Engine`] evaluates an expression against any [`Queryable`](pharos_model::storage::Queryable)
//!   at one time ([`Engine::instant`]) or over a range ([`Engine::range`]);
//! - [`api::router`] serves `/api/v1/*` (query, query_range, series, labels, label values,
//!   targets, metadata, exemplars, rules, alerts, status/*) and `/federate` with Prometheus' JSON
//!   envelope.
//!
//! ```
//! use pharos_query::{Engine, EngineOptions, Value, parser::parse};
//! # struct Empty;
//! # impl pharos_model::storage::Queryable for Empty {
//! #     fn querier(&self, _: i64, _: i64) -> pharos_model::storage::Result<Box<dyn pharos_model::storage::Querier>> {
//! #         Err(pharos_model::storage::Error::Closed)
//! #     }
//! # }
//! let engine = Engine::new(EngineOptions::default());
//! let v = engine.instant(&Empty, &parse("1 + 2 * 3").unwrap(), 0).unwrap();
//! assert_eq!(v, Value::Scalar(pharos_model::Sample { t: 0, v: 7.0 }));
//! ```

pub mod api;
pub mod ast;
mod engine;
pub mod functions;
pub mod notifier;
pub mod parser;
pub mod rules;

pub use engine::{Element, Engine, EngineOptions, EvalError, Metric, RangeSeries, Result, Value};
