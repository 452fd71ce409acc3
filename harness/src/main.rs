fn main() -> std::process::ExitCode {
    // The shim is this same binary; it must not build a runtime or parse flags.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__shim") {
        soak::supervise::shim::main();
    }
    soak::cli::main()
}
