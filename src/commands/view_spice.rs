//! `vmgpu view`'s SPICE side: which server drives the VM's keyboard and mouse (`--spice`, or the VM's live
//! domain read again before every connection attempt), the escape key and whether the clipboard is shared
//! (`--no-clipboard`; for `view <vm>` also the VM's `<vmgpu:viewer clipboard="no"/>`).
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::ViewArgs;
use crate::report::{EXIT_ERROR, ExitError};
use crate::spice::Endpoint;
use crate::viewer::input::SpiceConfig;
use crate::viewer::keymap;

/// The SPICE configuration for the window, or `None` when input is off or there is no server to find.
pub(super) fn config(args: &ViewArgs, vm: Option<&str>) -> anyhow::Result<Option<SpiceConfig>> {
    let escape = keymap::by_name(&args.escape_key).ok_or_else(|| {
        ExitError::new(
            EXIT_ERROR,
            format!(
                "--escape-key {:?} is not a key name (examples: ScrollLock, Pause, ControlRight, F12)",
                args.escape_key
            ),
        )
    })?;
    if args.no_input {
        return Ok(None);
    }
    if let Some(target) = &args.spice {
        let password = match &args.spice_password_file {
            Some(f) => read_password(f)?,
            None => Vec::new(),
        };
        let endpoint = Endpoint {
            target: target.clone(),
            password,
        };
        return Ok(Some(SpiceConfig {
            resolve: Arc::new(move || Ok(endpoint.clone())),
            escape,
            clipboard: !args.no_clipboard,
            playback: !args.no_audio,
            mic: args.mic,
        }));
    }
    let Some(vm) = vm else {
        tracing::info!(
            "no VM named and no --spice: the window shows the screen only (no keyboard or mouse)"
        );
        return Ok(None);
    };
    Ok(Some(SpiceConfig {
        resolve: live_domain(vm, &args.connect),
        escape,
        clipboard: !args.no_clipboard && metadata_clipboard(vm, &args.connect),
        playback: !args.no_audio,
        mic: args.mic,
    }))
}

/// The VM's `<vmgpu:viewer clipboard>` (on when absent, or when the domain cannot be read: the SPICE lookup
/// reports that itself).
#[cfg(feature = "libvirt")]
fn metadata_clipboard(vm: &str, uri: &str) -> bool {
    let xml = crate::libvirt::Libvirt::open(uri).and_then(|l| l.inactive_xml(vm));
    let config = match xml {
        Ok(Some(xml)) => crate::domain::read::metadata::VmgpuConfig::from_domain_xml(&xml),
        _ => return true,
    };
    match config {
        Ok(c) => {
            let on = c.is_none_or(|c| c.viewer.clipboard);
            if !on {
                tracing::info!("{vm}: clipboard off (<vmgpu:viewer clipboard=\"no\"/>)");
            }
            on
        }
        Err(e) => {
            tracing::warn!("{vm}: {e}; the clipboard stays on");
            true
        }
    }
}

#[cfg(not(feature = "libvirt"))]
fn metadata_clipboard(_vm: &str, _uri: &str) -> bool {
    true
}

/// The first line of the password file, which must not be readable by others.
fn read_password(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the SPICE password file {}", path.display()))?;
    let line = text.lines().next().unwrap_or_default();
    if line.len() > crate::spice::ticket::MAX_PASSWORD_LEN {
        return Err(ExitError::new(
            EXIT_ERROR,
            format!(
                "{}: a SPICE password has at most {} bytes",
                path.display(),
                crate::spice::ticket::MAX_PASSWORD_LEN
            ),
        )
        .into());
    }
    Ok(line.as_bytes().to_vec())
}

#[cfg(feature = "libvirt")]
fn live_domain(vm: &str, uri: &str) -> Arc<crate::viewer::input::ResolveFn> {
    let (vm, uri) = (vm.to_string(), uri.to_string());
    Arc::new(move || {
        let libvirt = crate::libvirt::Libvirt::open(&uri).map_err(|e| e.to_string())?;
        let xml = libvirt
            .live_xml(&vm)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no VM named {vm} at {uri}"))?;
        crate::spice::locate::from_live_xml(&xml)
    })
}

#[cfg(not(feature = "libvirt"))]
fn live_domain(_vm: &str, _uri: &str) -> Arc<crate::viewer::input::ResolveFn> {
    Arc::new(|| Err("built without libvirt: pass --spice HOST:PORT".to_string()))
}
