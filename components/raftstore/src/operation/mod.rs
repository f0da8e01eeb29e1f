//! The peer's behaviour, one feature a file: proposing writes
//! (`command`), reads (`query`), the round's ready handling (`ready`) and
//! applying committed entries (`apply`).

mod apply;
mod command;
mod query;
mod ready;
