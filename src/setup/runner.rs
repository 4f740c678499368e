//! Running a plan's commands: in the host root directly when it is `/`, through `chroot <root>` otherwise
//! (a prepared distro root in tests), and vmgpu's own subcommands as this binary with `--root`. Their output
//! goes to stderr; stdout is the plan's.
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::plan::{PlanCommand, Runs};
use crate::ops::process::{Failure, Output, Program};

/// How long one plan command may run (a package install over a slow mirror, an initramfs rebuild for
/// every kernel) before it is killed.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(60 * 60);

/// A command that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// It could not be started.
    #[error("cannot run `{line}`")]
    Spawn {
        /// The command.
        line: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited unsuccessfully.
    #[error("`{line}` failed ({status})")]
    Failed {
        /// The command.
        line: String,
        /// Its exit status.
        status: String,
    },
}

/// Runs plan commands.
pub trait Runner {
    /// Runs one command to completion.
    fn run(&self, command: &PlanCommand) -> Result<(), Error>;
}

/// Runs real processes.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    root: PathBuf,
    vmgpu: PathBuf,
}

impl ProcessRunner {
    /// A runner for `root`, using `vmgpu` (normally this executable) for vmgpu's own subcommands.
    pub fn new(root: &Path, vmgpu: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            vmgpu: vmgpu.to_path_buf(),
        }
    }

    /// The program to start; its output goes to our stderr (stdout is the plan's).
    fn command(&self, cmd: &PlanCommand) -> Option<Program> {
        let (program, args) = cmd.argv.split_first()?;
        let c = match cmd.runs {
            Runs::Vmgpu => Program::new(&self.vmgpu)
                .arg("--root")
                .arg(&self.root)
                .args(args),
            Runs::InRoot if self.root == Path::new("/") => Program::new(program).args(args),
            Runs::InRoot => Program::new("chroot")
                .arg(&self.root)
                .arg("/usr/bin/env")
                .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                .arg(program)
                .args(args),
        };
        Some(c.stdout(Output::OurStderr).stderr(Output::OurStderr))
    }
}

impl Runner for ProcessRunner {
    fn run(&self, cmd: &PlanCommand) -> Result<(), Error> {
        let line = cmd.line();
        let Some(c) = self.command(cmd) else {
            return Ok(());
        };
        tracing::info!("running {line}");
        eprintln!("vmgpu setup: running {line}");
        let status = match c.run(COMMAND_DEADLINE) {
            Ok(done) => done.status,
            Err(Failure::Start(source)) => return Err(Error::Spawn { line, source }),
            Err(other) => {
                return Err(Error::Failed {
                    line,
                    status: other.to_string(),
                });
            }
        };
        if status.success() {
            Ok(())
        } else {
            Err(Error::Failed {
                line,
                status: status.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::plan::CommandKind;

    #[test]
    fn test_command_in_other_root_goes_through_chroot() {
        let runner = ProcessRunner::new(Path::new("/srv/deb"), Path::new("/usr/bin/vmgpu"));
        let cmd = PlanCommand::in_root(CommandKind::Regenerate, &["update-grub"], "x");
        let c = runner.command(&cmd).unwrap();
        let c = c.command();
        assert_eq!(c.get_program(), "chroot");
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args.first().map(String::as_str), Some("/srv/deb"));
        assert_eq!(args.last().map(String::as_str), Some("update-grub"));
    }

    #[test]
    fn test_vmgpu_command_gets_root_flag() {
        let runner = ProcessRunner::new(Path::new("/srv/deb"), Path::new("/usr/bin/vmgpu"));
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
