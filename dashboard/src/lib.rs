//! pharos-dashboard
