use clap::Parser;

fn main() {
    let cli = provision::cli::Cli::parse();
    // The AWS SDK's futures are large, the more so in an unoptimised (`cargo run`) build:
    // give the runtime's threads room (the main thread has the OS's 8 MiB).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build();
    match runtime {
        Ok(rt) => std::process::exit(rt.block_on(provision::cli::run(cli))),
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}
