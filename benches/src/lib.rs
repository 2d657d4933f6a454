//! # huitong-benches
//!
//! Home of Huitong's benchmarks: criterion micro-benchmarks and side-by-side comparison
//! harnesses against peers (ConnectorX, DuckDB, a bare actix-web handler), each reporting a
//! ratio measured in one run (see docs/benchmarks.md).
//!
//! The foundation issue sets no performance target, so no benchmark lives here yet; the
//! connectors, libraries, exchange-API and open-data issues add theirs.
