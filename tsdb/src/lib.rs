//! pharos-tsdb
