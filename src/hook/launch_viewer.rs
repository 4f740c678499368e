//! `started begin`: start `vmgpu view <vm>` in the configured user's desktop session, fully detached so
//! libvirtd never waits for it: an intermediate vmgpu process (stdio on /dev/null) calls `setsid`, starts
//! the viewer as the user and exits at once (a double fork: the viewer is re-parented to init and holds
//! none of libvirt's pipes). The session comes from the user's runtime directory (`/run/user/<uid>`, its
//! `wayland-*` socket) and the X sockets in `/tmp/.X11-unix`; a missing session is a warning only.
//!
//! The viewer runs with the user's uid, primary gid and supplementary groups (`initgroups`, so it can read a
//! `root:kvm 0660` shm file when the user is in `kvm`, and keeps none of root's groups). It is started at every
//! `started`, also after a VM restart while a viewer is still open: `vmgpu view` allows one viewer per VM and
//! user (see `viewer::instance`), so the new launch only brings the open window to the front, and that window
//! has already mapped the restarted VM's new shm file.
use std::path::PathBuf;
use std::time::Duration;

use crate::host::HostRoot;
use crate::host::accounts::{self, User};
use crate::ops::HostOps;
use crate::ops::process::Program;

/// Set in the intermediate process's environment; `main` checks it first.
pub(crate) const ENV_LAUNCHER: &str = "VMGPU_INTERNAL_LAUNCH_VIEWER";

/// The session environment of a user: `XDG_RUNTIME_DIR`, `WAYLAND_DISPLAY`, `DISPLAY`, `XAUTHORITY`,
/// plus `HOME`, `USER`, `PATH`. `None` when the user has no graphical session.
pub(crate) fn session_env(root: &HostRoot, user: &User) -> Option<Vec<(String, String)>> {
    let runtime = format!("/run/user/{}", user.uid);
    let mut env = vec![
        ("HOME".to_string(), user.home.clone()),
        ("USER".to_string(), user.name.clone()),
        ("LOGNAME".to_string(), user.name.clone()),
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        ),
    ];
    let has_runtime = root.path(&runtime).is_dir();
    if has_runtime {
        env.push(("XDG_RUNTIME_DIR".into(), runtime.clone()));
    }
    let wayland = root
        .list_dir(&runtime)
        .unwrap_or_default()
        .into_iter()
        .find(|n| n.starts_with("wayland-") && !n.ends_with(".lock"));
    let x11 = root
        .list_dir("/tmp/.X11-unix")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.strip_prefix('X').and_then(|d| d.parse::<u32>().ok()))
        .min();
    if wayland.is_none() && x11.is_none() {
        return None;
    }
    if let Some(w) = wayland {
        env.push(("WAYLAND_DISPLAY".into(), w));
    }
    if let Some(n) = x11 {
        env.push(("DISPLAY".into(), format!(":{n}")));
        let candidates = [
            format!("{runtime}/gdm/Xauthority"),
            format!("{}/.Xauthority", user.home),
        ];
        let mutter = root
            .list_dir(&runtime)
            .unwrap_or_default()
            .into_iter()
            .find(|n| n.starts_with(".mutter-Xwaylandauth"))
            .map(|n| format!("{runtime}/{n}"));
        if let Some(auth) = mutter
            .into_iter()
            .chain(candidates)
            .find(|p| root.exists(p))
        {
            env.push(("XAUTHORITY".into(), auth));
        }
    }
    Some(env)
}

/// How long the launcher may take (it only starts the viewer in a new session and exits).
const LAUNCHER_DEADLINE: Duration = Duration::from_secs(10);

/// Starts the viewer for `vm` as `user` (under a test root the simulation records the launcher's command
/// line instead). Problems are warnings: the VM runs regardless.
pub(crate) fn launch(ops: &dyn HostOps, vm: &str, user: Option<&str>) {
    let root = ops.root();
    let Some(name) = user else {
        tracing::warn!("viewer launch is on but <vmgpu:viewer> names no user: not starting it");
        return;
    };
    let Some(account) = accounts::user(root, name) else {
        tracing::warn!("viewer user {name:?} does not exist: not starting the viewer");
        return;
    };
    let Some(env) = session_env(root, &account) else {
        tracing::warn!(
            "{name} has no graphical session (no wayland socket in /run/user/{}, no X display): start `vmgpu view {vm}` by hand",
            account.uid
        );
        return;
    };
    let exe = viewer_binary(root);
    let launcher = Program::new(&exe)
        .arg0("vmgpu")
        .env_clear()
        .env(ENV_LAUNCHER, "1")
        .env("VMGPU_VIEWER_UID", account.uid.to_string())
        .env("VMGPU_VIEWER_GID", account.gid.to_string())
        .env("VMGPU_VIEWER_VM", vm)
        .env("VMGPU_VIEWER_USER", &account.name)
        .envs(env);
    match ops.run(launcher, LAUNCHER_DEADLINE) {
        Ok(()) => tracing::info!("started `vmgpu view {vm}` for {name}"),
        Err(e) => tracing::warn!("starting the viewer failed: {e}"),
    }
}

/// The intermediate process: new session, start the viewer as the user, exit. Returns the exit code.
pub(crate) fn launcher_main() -> u8 {
    let _ = nix::unistd::setsid();
    let get = |k: &str| std::env::var(k).ok();
    let (Some(uid), Some(gid), Some(vm)) = (
        get("VMGPU_VIEWER_UID").and_then(|v| v.parse::<u32>().ok()),
        get("VMGPU_VIEWER_GID").and_then(|v| v.parse::<u32>().ok()),
        get("VMGPU_VIEWER_VM"),
    ) else {
        return 2;
    };
    // The user's supplementary groups instead of root's (the viewer inherits them). Without a name, drop every supplementary group rather than keep root's.
    let groups = match get("VMGPU_VIEWER_USER").and_then(|n| std::ffi::CString::new(n).ok()) {
        Some(name) => nix::unistd::initgroups(&name, nix::unistd::Gid::from_raw(gid)),
        None => nix::unistd::setgroups(&[nix::unistd::Gid::from_raw(gid)]),
    };
    if groups.is_err() {
        return 1;
    }
    // This process becomes the user before it starts the viewer: a spawn that sets the uid itself drops every
    // supplementary group again when it runs as root (std clears them), and the viewer needs the user's `kvm`
    // (shm file, libvirt socket). gid first: after setuid there is no right to change it.
    let (uid, gid) = (
        nix::unistd::Uid::from_raw(uid),
        nix::unistd::Gid::from_raw(gid),
    );
    if nix::unistd::setgid(gid).is_err() || nix::unistd::setuid(uid).is_err() {
        return 1;
    }
    if nix::unistd::getuid() != uid || nix::unistd::geteuid() != uid {
        return 1;
    }
    // This launcher is already the binary the hook chose (`viewer_binary`): the viewer is this same program.
    let viewer = Program::new(std::env::current_exe().unwrap_or_else(|_| PathBuf::from("vmgpu")))
        .arg0("vmgpu")
        .args(["view", &vm])
        .env_remove(ENV_LAUNCHER)
        .env_remove("VMGPU_VIEWER_UID")
        .env_remove("VMGPU_VIEWER_GID")
        .env_remove("VMGPU_VIEWER_VM")
        .env_remove("VMGPU_VIEWER_USER")
        .current_dir("/");
    match viewer.spawn_detached() {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

/// The full `vmgpu` for the viewer: the one `install` recorded (needed when the hook is the hook-only
/// binary), else the usual places, else this binary.
fn viewer_binary(root: &HostRoot) -> PathBuf {
    if let Some(cli) = super::location::recorded_cli(root) {
        return cli;
    }
    ["/usr/bin/vmgpu", "/usr/sbin/vmgpu", "/usr/local/bin/vmgpu"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("vmgpu"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_session_env_finds_wayland_and_x11() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("run/user/1000")).unwrap();
        std::fs::write(dir.path().join("run/user/1000/wayland-0"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("tmp/.X11-unix")).unwrap();
        std::fs::write(dir.path().join("tmp/.X11-unix/X1"), "").unwrap();
        let user = User {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/alice".into(),
        };
        let env = session_env(&HostRoot::new(dir.path()), &user).unwrap();
        assert!(env.contains(&("WAYLAND_DISPLAY".into(), "wayland-0".into())));
        assert!(env.contains(&("DISPLAY".into(), ":1".into())));
        assert!(env.contains(&("XDG_RUNTIME_DIR".into(), "/run/user/1000".into())));
    }

    #[test]
    fn test_session_env_without_session_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let user = User {
            name: "bob".into(),
            uid: 1001,
            gid: 1001,
            home: "/home/bob".into(),
        };
        assert_eq!(session_env(&HostRoot::new(dir.path()), &user), None);
    }
}
