//! Running a plan's commands through the host's operations ([`HostOps::run`]): on `/` the programs run as
//! they are; under another root the simulation runs the root's own programs inside it (`chroot`) or
//! simulates them (see `ops::sim`). vmgpu's own subcommands run as this binary with the same `--root`.
//! Their output goes to stderr; stdout is the plan's.
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::plan::{PlanCommand, Runs};
use crate::ops::HostOps;
use crate::ops::process::{Output, Program};

/// How long one plan command may run (a package install over a slow mirror, an initramfs rebuild for
/// every kernel) before it is killed.
pub(crate) const COMMAND_DEADLINE: Duration = Duration::from_secs(60 * 60);

/// A command that failed (to start, in time, or with a non-zero exit).
#[derive(Debug, thiserror::Error)]
#[error("`{line}` failed: {detail}")]
pub(crate) struct Error {
    /// The command.
    pub line: String,
    /// Why: the exit status, the deadline, or why it could not start.
    pub detail: String,
}

/// Runs plan commands.
pub(crate) trait Runner {
    /// Runs one command to completion.
    fn run(&self, command: &PlanCommand) -> Result<(), Error>;
}

/// Runs plan commands through the host's operations.
pub(crate) struct OpsRunner<'a> {
    ops: &'a dyn HostOps,
    vmgpu: PathBuf,
}

impl<'a> OpsRunner<'a> {
    /// A runner on `ops`, using `vmgpu` (normally this executable) for vmgpu's own subcommands.
    pub(crate) fn new(ops: &'a dyn HostOps, vmgpu: &Path) -> Self {
        Self {
            ops,
            vmgpu: vmgpu.to_path_buf(),
        }
    }

    /// The program to start; its output goes to our stderr (stdout is the plan's).
    fn command(&self, cmd: &PlanCommand) -> Option<Program> {
        let (program, args) = cmd.argv.split_first()?;
        let c = match cmd.runs {
            Runs::Vmgpu => Program::new(&self.vmgpu)
                .arg("--root")
                .arg(self.ops.root().base())
                .args(args),
            Runs::InRoot => Program::new(program).args(args),
        };
        Some(c.stdout(Output::OurStderr).stderr(Output::OurStderr))
    }
}

impl Runner for OpsRunner<'_> {
    fn run(&self, cmd: &PlanCommand) -> Result<(), Error> {
        let line = cmd.line();
        let Some(c) = self.command(cmd) else {
            return Ok(());
        };
        tracing::info!("running {line}");
        eprintln!("vmgpu setup: running {line}");
        let done = match cmd.runs {
            // Our own binary on the same root (it picks that root's operations itself).
            Runs::Vmgpu => crate::ops::real::run_program(c, COMMAND_DEADLINE),
            Runs::InRoot => self.ops.run(c, COMMAND_DEADLINE),
        };
        done.map_err(|e| {
            let detail = match e {
                crate::ops::Error::Command { detail, .. } => detail,
                other => other.to_string(),
            };
            Error { line, detail }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostRoot;
    use crate::ops::sim::{COMMANDS, SimOps};
    use crate::setup::plan::CommandKind;

    #[test]
    fn test_command_in_a_tree_without_the_program_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let ops = SimOps::new(HostRoot::new(dir.path()));
        let runner = OpsRunner::new(&ops, Path::new("/usr/bin/vmgpu"));
        let cmd = PlanCommand::in_root(CommandKind::Regenerate, &["update-grub"], "x");
        runner.run(&cmd).unwrap();
        let log = std::fs::read_to_string(HostRoot::new(dir.path()).path(COMMANDS)).unwrap();
        assert_eq!(log, "update-grub\n");
    }

    #[test]
    fn test_vmgpu_command_gets_root_flag() {
        let ops = SimOps::new(HostRoot::new("/srv/deb"));
        let runner = OpsRunner::new(&ops, Path::new("/usr/bin/vmgpu"));
        let mut cmd = PlanCommand::in_root(CommandKind::Hook, &["vmgpu", "install"], "x");
        cmd.runs = Runs::Vmgpu;
        let c = runner.command(&cmd).unwrap();
        let c = c.command();
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, vec!["--root", "/srv/deb", "install"]);
    }
}
