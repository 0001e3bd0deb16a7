//! The `selfheal` server: settings, logger, then `Application::build(..).run_until_stopped()`.

use std::process::ExitCode;

use selfheal::startup::Application;
use selfheal::Settings;

#[actix_web::main]
async fn main() -> ExitCode {
    let settings = Settings::from_env();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // A panic anywhere goes to the log with its location; agents' panics are also caught
    // and turned into restarts by their harness.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        log::error!(
            "panic in thread {}: {info}",
            thread.name().unwrap_or("unnamed")
        );
    }));
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("selfheal: {e}");
            return ExitCode::from(2);
        }
    };
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            log::error!("selfheal could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
