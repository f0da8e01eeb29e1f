//! The engine's integration tests: one binary, one module per concern.

mod support;

mod cases {
    mod crash;
    mod fault;
    mod log_storage;
    mod model;
    mod reads;
    mod recovery;
    mod snapshot;
}
