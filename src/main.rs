//! The `selfheal` server: settings and logger ([`selfheal::init`]), then
//! `Application::build(..).run_until_stopped()`.

use std::process::ExitCode;

use selfheal::startup::Application;

#[actix_web::main]
async fn main() -> ExitCode {
    let settings = match selfheal::system::init_or_exit_code() {
        Ok(s) => s,
        Err(code) => return ExitCode::from(code),
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
