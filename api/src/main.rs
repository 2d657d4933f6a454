//! The `huitong` binary: see `huitong --help`.

fn main() -> std::process::ExitCode {
    huitong::cli::main()
}
