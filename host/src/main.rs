//! The `nvrctl` binary: everything is in the library, see [`nvrctl::cli`].

fn main() -> std::process::ExitCode {
    nvrctl::cli::main()
}
