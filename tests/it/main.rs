//! The integration tests, one binary: the `offboard` binary from outside, the dialects' wire
//! format, the simulated providers, the storage contract and end to end on both backends.
//! One binary links the crate once and shares one log capture (`helpers::captured_logs`).

mod cli;
mod dialects;
mod end_to_end;
mod helpers;
mod provider_faults;
mod simulator;
mod storage_contract;
