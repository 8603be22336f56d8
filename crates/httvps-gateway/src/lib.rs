//! The HTTVPS gateway (being written).
