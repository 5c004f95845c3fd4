//! Shared code of aigw's fuzz targets. See `fuzz/README.md`.

pub mod cases;
