//! One module per subcommand. This is the only layer that uses `anyhow` and adds context for the user.
use crate::cli::{Cli, Command};
use crate::report::Outcome;

pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod define;
pub(crate) mod explain;
pub(crate) mod gpus;
pub mod hook;
pub mod install;
pub(crate) mod restore;
pub(crate) mod setup;
pub(crate) mod status;
pub(crate) mod view;

/// Refuses a `--user` (or `SUDO_USER`) that is not in the host's `/etc/passwd` (read through the root), naming
/// it: a domain or setup for nobody fails only later, at every VM start.
pub(crate) fn check_user(root: &crate::host::HostRoot, user: Option<&str>) -> anyhow::Result<()> {
    let Some(user) = user else {
        return Ok(());
    };
    if crate::host::accounts::user(root, user).is_none() {
        anyhow::bail!(
            "--user {:?} does not exist on this host (not in {}); pass the desktop user who runs the viewer",
            user.chars().take(64).collect::<String>(),
            root.path("/etc/passwd").display()
        );
    }
    Ok(())
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let root = cli.root;
    match cli.command {
        Command::Check(args) => check::run(&root, &args),
        Command::Gpus(args) => gpus::run(&root, &args),
        Command::Hook(args) => hook::run(&root, &args),
        Command::Define(args) => define::run(&root, &args),
        Command::View(args) => view::run(&root, &args),
        Command::Setup(args) => setup::run(&root, &args),
        Command::Install(args) => install::run_install(&root, &args),
        Command::Uninstall(args) => install::run_uninstall(&root, &args),
        Command::Restore(args) => restore::run(&root, &args),
        Command::Status(args) => status::run(&root, &args),
        Command::Completions(args) => completions::run_completions(&args),
        Command::Man => completions::run_man(),
        Command::Explain(args) => explain::run(&root, &args),
    }
}
