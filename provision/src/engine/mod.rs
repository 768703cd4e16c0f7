//! The engine every resource runs on: AWS clients (`aws`), what their errors say
//! (`errors`), bounded retries and waits (`retry`), the context of one run (`context`), the dependency graph and its walker
//! (`graph`), ownership tags (`tags`) and the stack lock (`lock`).

pub mod aws;
pub mod context;
pub mod errors;
pub mod graph;
pub mod lock;
pub mod retry;
pub mod tags;
