//! The keyboard shortcuts: one table that both decides what a key does and fills the F1 help,
//! so the two cannot drift apart.

use super::command::Command;
use egui::{Key, KeyboardShortcut, ModifierNames, Modifiers};

/// One key (with its modifiers) and what it does.
pub struct Shortcut {
    pub key: KeyboardShortcut,
    pub command: Command,
    /// The help text.
    pub what: &'static str,
    /// Taken even while a text field has the keyboard.
    pub while_typing: bool,
}

const fn shortcut(
    modifiers: Modifiers,
    key: Key,
    command: Command,
    what: &'static str,
) -> Shortcut {
    Shortcut {
        key: KeyboardShortcut::new(modifiers, key),
        command,
        what,
        while_typing: false,
    }
}

/// `shortcut`, also taken while a text field has the keyboard.
const fn while_typing(mut shortcut: Shortcut) -> Shortcut {
    shortcut.while_typing = true;
    shortcut
}

const CTRL: Modifiers = Modifiers::COMMAND;
const NONE: Modifiers = Modifiers::NONE;

/// Every shortcut, in the order the help lists them. Ctrl+Shift+Z comes before Ctrl+Z: egui
/// matches Ctrl+Z whatever Shift is, so redo must take its keys first.
pub static SHORTCUTS: [Shortcut; 11] = [
    shortcut(CTRL, Key::O, Command::OpenFolder, "open a study folder"),
    shortcut(
        NONE,
        Key::Enter,
        Command::AcceptPreview,
        "accept the mask preview into the active segment",
    ),
    shortcut(
        NONE,
        Key::Escape,
        Command::ClearPrompt,
        "clear the prompt and the preview",
    ),
    shortcut(
        Modifiers {
            shift: true,
            ..Modifiers::COMMAND
        },
        Key::Z,
        Command::Redo,
        "redo",
    ),
    shortcut(CTRL, Key::Z, Command::Undo, "undo"),
    shortcut(NONE, Key::ArrowUp, Command::NextSlice, "next slice"),
    shortcut(
        NONE,
        Key::ArrowDown,
        Command::PreviousSlice,
        "previous slice",
    ),
    shortcut(NONE, Key::PageDown, Command::TenSlicesOn, "ten slices on"),
    shortcut(NONE, Key::PageUp, Command::TenSlicesBack, "ten slices back"),
    while_typing(shortcut(
        NONE,
        Key::F1,
        Command::ToggleHelp,
        "show or hide this help",
    )),
    shortcut(CTRL, Key::Q, Command::Quit, "save the annotation and quit"),
];

/// What the pointer does, for the help (these are not keys, so not in `SHORTCUTS`).
pub const POINTER_HELP: [(&str, &str); 6] = [
    ("mouse wheel", "next / previous slice"),
    ("left drag (Box tool)", "draw a box prompt"),
    ("left click (+ / - tools)", "include / exclude point"),
    (
        "left drag (Brush / Eraser)",
        "paint into / erase from the active segment",
    ),
    ("right drag", "window / level"),
    ("Ctrl + wheel, middle drag", "zoom, pan (Fit view resets)"),
];

/// The commands this frame's keys ask for, in table order. Keys with modifiers are consumed,
/// matched on the modifiers each key event carried: when the window repaints slowly, Ctrl
/// down, Q, Ctrl up arrive in one frame. `typing`: a text field has the keyboard, so only the
/// shortcuts meant for that time count.
pub fn pressed(ctx: &egui::Context, typing: bool) -> Vec<Command> {
    ctx.input_mut(|input| {
        SHORTCUTS
            .iter()
            .filter(|s| s.while_typing || !typing)
            .filter(|s| {
                if s.key.modifiers.is_none() {
                    input.key_pressed(s.key.logical_key)
                } else {
                    input.consume_shortcut(&s.key)
                }
            })
            .map(|s| s.command.clone())
            .collect()
    })
}

/// The rows of the F1 help: each shortcut's keys in words, then the pointer's gestures.
pub fn help_rows() -> impl Iterator<Item = (String, &'static str)> {
    let keys = SHORTCUTS
        .iter()
        .map(|s| (s.key.format(&ModifierNames::NAMES, false), s.what));
    let pointer = POINTER_HELP
        .iter()
        .map(|(gesture, what)| (gesture.to_string(), *what));
    keys.chain(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_names_every_key_as_egui_matches_it() {
        let rows: Vec<(String, &str)> = help_rows().collect();
        assert_eq!(rows.len(), SHORTCUTS.len() + POINTER_HELP.len());
        assert_eq!(rows[0], ("Ctrl+O".to_string(), "open a study folder"));
        assert!(rows.contains(&("Ctrl+Shift+Z".to_string(), "redo")));
        assert!(rows.contains(&("PageDown".to_string(), "ten slices on")));
        let redo = SHORTCUTS.iter().position(|s| s.command == Command::Redo);
        let undo = SHORTCUTS.iter().position(|s| s.command == Command::Undo);
        assert!(
            redo < undo,
            "redo must take Ctrl+Shift+Z before undo sees Ctrl+Z"
        );
    }
}
