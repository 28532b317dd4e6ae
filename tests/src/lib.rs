//! End-to-end tests of Jubilant DB: real processes on real files (and, once
//! the server lands, real sockets), killed with `SIGKILL` mid-flight.
//!
//! The tests live in `tests/`; this library is empty on purpose. What runs
//! today: a writer process appending and syncing through the WAL's log-file
//! layer on `io-real`, killed at a random moment, then recovered and checked
//! record by record, several times over.
