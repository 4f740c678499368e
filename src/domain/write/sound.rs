//! The guest's sound card: an Intel HDA (`<sound model='ich9'>`) whose audio goes to the SPICE audiodev
//! (`<audio type='spice'>`), so `vmgpu view` plays it (docs/spice.md, "Audio"). The templates have it; `define
//! --update` adds it to a domain that has no sound device at all (one defined before vmgpu did audio), and
//! `--no-sound` takes vmgpu's card out. A sound device the user chose (another model, another audio backend) is
//! never touched, and every other byte of the domain stays as it was (the rewrite of `rewrite.rs`).
use super::rewrite::{self, Rule};
use crate::domain::read::xml::{Index, Node};

/// Devices libvirt lists after the sound card: a new card goes before the first of them. (Not before a
/// `<hostdev>`, though libvirt lists those later too: a user's comment above one would end up above the card.)
const AFTER_SOUND: &[&str] = &["audio", "video", "watchdog", "memballoon", "rng", "panic"];
/// And a new `<audio>` before these.
const AFTER_AUDIO: &[&str] = &["video", "watchdog", "memballoon", "rng", "panic"];

const DEVICES: &[&str] = &["domain", "devices"];

/// The ids of the domain's `<audio type='spice'>` backends, and the highest audio id of any type.
fn audio_ids(index: &Index<'_>) -> (Vec<String>, u32) {
    let mut spice = Vec::new();
    let mut highest = 0;
    for a in index
        .at(DEVICES)
        .flat_map(|d| index.children(d))
        .filter(|n| n.local_name() == "audio")
    {
        let id = a.attr("id").unwrap_or("");
        highest = highest.max(id.parse::<u32>().unwrap_or(0));
        if a.attr("type") == Some("spice") {
            spice.push(id.to_string());
        }
    }
    (spice, highest)
}

/// The `<audio id>` a `<sound>` plays to.
fn sound_audio_id<'i>(index: &'i Index<'_>, sound: &'i Node) -> Option<&'i str> {
    index
        .children(sound)
        .find(|c| c.local_name() == "audio")
        .and_then(|a| a.attr("id"))
}

/// `on`: adds the ich9 card on the SPICE audio when `<devices>` has no `<sound>` (and the SPICE `<audio>` when it
/// has none). Off: removes the ich9 cards that play to a SPICE audio (vmgpu's), and nothing else.
pub(crate) fn apply(xml: &str, on: bool) -> rewrite::Result<String> {
    let index = Index::parse(xml).map_err(rewrite::Error::Index)?;
    let (spice, highest) = audio_ids(&index);
    if !on {
        return rewrite::apply(
            xml,
            &[Rule::replace_where(
                DEVICES,
                "sound",
                move |index, n| {
                    n.attr("model") == Some("ich9")
                        && sound_audio_id(index, n).is_some_and(|id| spice.iter().any(|s| s == id))
                },
                Vec::new(),
            )],
        );
    }
    let has_sound = index
        .at(DEVICES)
        .flat_map(|d| index.children(d))
        .any(|n| n.local_name() == "sound");
    if has_sound || index.at(DEVICES).next().is_none() {
        return Ok(xml.to_string());
    }
    let mut rules = Vec::new();
    let id = match spice.first() {
        Some(id) => id.clone(),
        None => {
            let id = (highest + 1).to_string();
            rules.push(
                Rule::ensure(
                    DEVICES,
                    "audio",
                    Some(Box::new(|_: &Index<'_>, n: &Node| {
                        n.attr("type") == Some("spice")
                    })),
                    vec![format!("<audio id='{id}' type='spice'/>")],
                )
                .before(AFTER_AUDIO),
            );
            id
        }
    };
    rules.insert(
        0,
        Rule::ensure(
            DEVICES,
            "sound",
            None,
            vec![format!(
                "<sound model='ich9'>\n  <audio id='{id}'/>\n</sound>"
            )],
        )
        .before(AFTER_SOUND),
    );
    rewrite::apply(xml, &rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE: &str = "<domain type='kvm'>\n  <name>w</name>\n  <devices>\n    <!-- mine -->\n    <channel type='spicevmc'/>\n    <video>\n      <model type='none'/>\n    </video>\n    <memballoon model='none'/>\n  </devices>\n</domain>\n";

    #[test]
    fn adds_card_and_spice_audio_where_none() {
        let out = apply(BARE, true).unwrap();
        assert_eq!(
            out,
            BARE.replace(
                "    <video>",
                "    <sound model='ich9'>\n      <audio id='1'/>\n    </sound>\n    <audio id='1' type='spice'/>\n    <video>"
            )
        );
        assert_eq!(apply(&out, true).unwrap(), out, "twice: nothing more");
        assert_eq!(apply(&out, false).unwrap().matches("<sound").count(), 0);
    }

    #[test]
    fn uses_the_existing_spice_audio_and_leaves_user_sound_alone() {
        let with_audio = BARE.replace(
            "    <video>",
            "    <audio id=\"3\" type=\"spice\"/>\n    <video>",
        );
        let out = apply(&with_audio, true).unwrap();
        assert!(
            out.contains(
                "<sound model='ich9'>\n      <audio id='3'/>\n    </sound>\n    <audio id=\"3\""
            ),
            "{out}"
        );
        assert_eq!(out.matches("<audio id").count(), 2);
        // A card of the user's own (another model, another backend) is kept, on and off.
        let user = BARE.replace(
            "    <video>",
            "    <sound model='ac97'><audio id='1'/></sound>\n    <audio id='1' type='pulseaudio'/>\n    <video>",
        );
        assert_eq!(apply(&user, true).unwrap(), user);
        assert_eq!(apply(&user, false).unwrap(), user);
    }
}
