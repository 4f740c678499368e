//! Users and groups from `/etc/passwd` and `/etc/group`, read through the [`HostRoot`] — the one parser of both
//! files. Hand-written (not `nix::unistd::User`/`uzers`) because those ask the running system's NSS, which would
//! answer for the machine vmgpu runs on, not for `--root` (docs/dependencies.md).
//!
//! A missing file is an empty table; a line that does not parse (a comment, NIS `+` entries, a short line) is
//! skipped.
use super::root::{self, HostRoot};

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Supplementary members (user names).
    pub members: Vec<String>,
}

impl Group {
    /// True when `user` is a supplementary member.
    pub(crate) fn has_member(&self, user: &str) -> bool {
        self.members.iter().any(|m| m == user)
    }
}

/// The users and groups of a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Accounts {
    /// `/etc/passwd`, in file order.
    pub users: Vec<User>,
    /// `/etc/group`, in file order.
    pub groups: Vec<Group>,
}

impl Accounts {
    /// Reads both files under `root`.
    pub(crate) fn read(root: &HostRoot) -> root::Result<Self> {
        Ok(Self {
            users: users(root)?,
            groups: groups(root)?,
        })
    }

    /// The group named `name`.
    #[cfg(test)]
    pub(crate) fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The name of user id `uid`.
    pub(crate) fn user_name(&self, uid: u32) -> Option<&str> {
        self.users
            .iter()
            .find(|u| u.uid == uid)
            .map(|u| u.name.as_str())
    }

    /// The name of group id `gid`.
    pub(crate) fn group_name(&self, gid: u32) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| g.gid == gid)
            .map(|g| g.name.as_str())
    }
}

/// `/etc/passwd` under `root` (empty when missing).
pub(crate) fn users(root: &HostRoot) -> root::Result<Vec<User>> {
    Ok(parse_passwd(
        &root.read_optional("/etc/passwd")?.unwrap_or_default(),
    ))
}

/// `/etc/group` under `root` (empty when missing).
pub(crate) fn groups(root: &HostRoot) -> root::Result<Vec<Group>> {
    Ok(parse_group(
        &root.read_optional("/etc/group")?.unwrap_or_default(),
    ))
}

/// The user named `name` in `/etc/passwd` under `root`; `None` when it is not there or the file is unreadable.
pub(crate) fn user(root: &HostRoot, name: &str) -> Option<User> {
    users(root).ok()?.into_iter().find(|u| u.name == name)
}

/// Parses `/etc/passwd` text: `name:password:uid:gid:gecos:home:shell`.
pub(crate) fn parse_passwd(text: &str) -> Vec<User> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            match f.as_slice() {
                [name, _, uid, gid, rest @ ..] if !name.is_empty() => Some(User {
                    name: name.to_string(),
                    uid: uid.parse().ok()?,
                    gid: gid.parse().ok()?,
                    home: rest.get(1).unwrap_or(&"").to_string(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// Parses `/etc/group` text: `name:password:gid:member,member`.
pub(crate) fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            match f.as_slice() {
                [name, _, gid, rest @ ..] if !name.is_empty() => Some(Group {
                    name: name.to_string(),
                    gid: gid.parse().ok()?,
                    members: rest
                        .first()
                        .unwrap_or(&"")
                        .split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect(),
                }),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_passwd() {
        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n# comment\n+nis\nalice:x:1000:100:Alice:/home/alice:/bin/sh\nbad:x:zz:1\n",
        );
        assert_eq!(users.len(), 2);
        assert_eq!(
            users[1],
            User {
                name: "alice".into(),
                uid: 1000,
                gid: 100,
                home: "/home/alice".into()
            }
        );
    }

    #[test]
    fn test_parse_group_members() {
        let groups = parse_group("kvm:x:36:alice, bob\nlibvirt:x:977:\nwheel:x:10\n");
        assert_eq!(groups.len(), 3);
        assert!(groups[0].has_member("bob"));
        assert!(groups[1].members.is_empty());
        let accounts = Accounts {
            users: Vec::new(),
            groups,
        };
        assert_eq!(accounts.group_name(977), Some("libvirt"));
        assert_eq!(accounts.group("wheel").map(|g| g.gid), Some(10));
    }

    #[test]
    fn test_missing_files_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        assert_eq!(Accounts::read(&root).unwrap(), Accounts::default());
        assert!(user(&root, "alice").is_none());
    }
}
