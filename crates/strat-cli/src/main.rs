use clap::Parser;

fn main() {
    let cli = strat_cli::Cli::parse();
    std::process::exit(strat_cli::run(cli));
}
