//! pharos-exporters
