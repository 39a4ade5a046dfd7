//! The `edgenvr` binary: everything is in the library, see [`edgenvr::cli`].

fn main() -> std::process::ExitCode {
    edgenvr::cli::main()
}
