//! pharos-query
