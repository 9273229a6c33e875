//! Who may do what in a room: the one table every decision reads, printed in
//! PROTOCOL.md ("Permissions"). A role may do everything the roles below it
//! may. Acting on another member (kick, ban, mute, set a role) also needs a
//! role above theirs; see `RoomState::require_over`.

use hearth_protocol::Role;

/// What a member may ask of a room, by the least role it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read history and threads, list members, see who is online; report
    /// messages, read one's own reports and warnings.
    Read,
    /// Post, reply in threads, react, edit and delete one's own messages, type.
    Post,
    /// Read the join requests, approve or deny them; make invite codes; set
    /// the welcome message; read the open reports and dismiss them.
    Welcome,
    /// Pin, unpin and order notes; delete any message; kick, ban, unban, mute,
    /// unmute; warn, lift warnings, read anyone's warnings, act on reports;
    /// lock the room down and lift it;
    /// read the moderation log and earlier versions of edited
    /// messages; revoke invites; schedule prompts; read the room's health.
    Moderate,
    /// Give or take the welcomer role (moderators) — and the moderator role (owners).
    AssignRoles,
    /// Change the room's settings (topic, cap, visibility, slow mode, gate,
    /// probation, rules acknowledgement).
    Configure,
    /// Make someone a moderator.
    AppointModerators,
    Pin,
}

/// The least role that may do `action`.
pub const fn least_role(action: Action) -> Role {
    match action {
        Action::Read | Action::Post => Role::Member,
        Action::Welcome => Role::Welcomer,
        Action::Moderate | Action::Pin | Action::AssignRoles | Action::Configure => Role::Moderator,
        Action::AppointModerators => Role::Owner,
    }
}

/// The action an operation needs (by its wire name), and whether it acts on
/// another member (which then needs a role above theirs). `None` for
/// operations that need no membership (`ping`, `create_room`, `join`, ...).
pub fn of_op(op: &str) -> Option<(Action, bool)> {
    Some(match op {
        "history" | "thread" | "members" | "presence" | "report" | "reports" | "warnings" => (Action::Read, false),
        "send" | "edit" | "react" | "typing" | "ack_rules" => (Action::Post, false),
        "delete" => (Action::Post, false),
        "join_requests" | "decide_join" | "create_invite" | "resolve_report" => (Action::Welcome, false),
        "pin" | "unpin" | "order_pins" => (Action::Pin, false),
        "kick" | "ban" | "mute" | "unmute" | "unban" | "warn" | "unwarn" => (Action::Moderate, true),
        "lockdown" => (Action::Moderate, false),
        "mod_log" | "revoke_invite" | "schedule_prompt" | "cancel_prompt" | "stats" | "versions" => {
            (Action::Moderate, false)
        }
        "set_role" => (Action::AssignRoles, true),
        "set_room" => (Action::Configure, false),
        _ => return None,
    })
}
