fn main() -> std::process::ExitCode {
    // The shim is this same binary; it must not build a runtime or parse flags.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__shim") {
        soak::supervise::shim::main();
    }
    // A long run's partial report, built apart from soak's own memory.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__report")
        && let Some(dir) = std::env::args_os().nth(2)
    {
        soak::partial::child_main(std::path::Path::new(&dir));
    }
    soak::cli::main()
}
