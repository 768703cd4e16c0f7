use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = gallery::cli::Cli::parse();
    match gallery::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
