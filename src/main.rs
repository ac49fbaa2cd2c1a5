//! The `offboard` binary: everything lives in the library; see `offboard::cli`.

fn main() -> std::process::ExitCode {
    offboard::cli::main()
}
