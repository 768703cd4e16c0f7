use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = provision::cli::Cli::parse();
    std::process::exit(provision::cli::run(cli).await);
}
