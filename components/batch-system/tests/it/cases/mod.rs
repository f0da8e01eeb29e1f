mod control;
mod delivery;
mod fairness;
mod mailbox_full;
mod metrics;
mod randomized;
mod rounds;
mod shutdown;
