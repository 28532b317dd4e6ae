//! The Rust client library for Jubilant DB: async, pipelined, with typed
//! errors, generic over any `futures-io` byte stream so the simulator's
//! clients and `jubectl` use the same code as applications.
//!
//! Status: the client arrives with the server and its wire protocol.
