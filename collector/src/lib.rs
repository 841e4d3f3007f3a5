//! pharos-collector
