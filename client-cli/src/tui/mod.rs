//! `hearth` with no command: a full-screen chat UI. The state lives in
//! [`app`], drawing in [`view`], the connection in [`net`]; this module owns
//! the terminal — raw mode and the alternate screen, always given back, on
//! quit, on error and on panic — and the loop that joins keys, server news and
//! drawing.

pub mod app;
pub mod input;
pub mod net;
pub mod view;

use std::io::Stdout;

use anyhow::{Context, Result};
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use futures_util::StreamExt;
use hearth_protocol::UserId;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use crate::Options;
use app::App;

/// Runs the UI until the member quits.
pub async fn run(options: Options, keeper: Option<crate::account::Keeper>) -> Result<()> {
    let plain = std::env::var_os("NO_COLOR").is_some() || std::env::var("TERM").is_ok_and(|t| t == "dumb");
    let mut terminal = TerminalGuard::enter()?;
    let (action_tx, action_rx) = mpsc::channel(256);
    let (net_tx, mut net_rx) = mpsc::channel(1024);
    let network = tokio::spawn(net::run(options, keeper, action_rx, net_tx));
    let mut app = App::new(UserId::new("you").expect("a valid name"));
    let mut keys = EventStream::new();
    while !app.quit {
        terminal.0.draw(|frame| view::draw(frame, &app, plain)).context("drawing the screen")?;
        let page = terminal.0.size().map(|s| usize::from(s.height.saturating_sub(4)).max(1)).unwrap_or(10);
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(key))) if key.kind != KeyEventKind::Release => {
                    for action in app.on_key(key, page) {
                        if action_tx.send(action).await.is_err() {
                            app.quit = true;
                        }
                    }
                }
                // A resize (or anything else) just redraws.
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error).context("reading the keyboard"),
                None => break,
            },
            net = net_rx.recv() => match net {
                Some(net) => {
                    app.on_net(net);
                    // Take whatever else is waiting before drawing again.
                    while let Ok(more) = net_rx.try_recv() {
                        app.on_net(more);
                    }
                }
                None => break,
            },
            // Someone's typing indicator goes out: just redraw without it.
            _ = net::sleep_until_some(app.next_typing_expiry()) => app.expire_typing(tokio::time::Instant::now()),
        }
        // What the UI asks by itself (a room seen is marked read).
        for action in app.take_actions() {
            if action_tx.send(action).await.is_err() {
                app.quit = true;
            }
        }
    }
    drop(action_tx);
    network.abort();
    // The network task gave up for good (a disabled account, a refused
    // token): say why on the restored terminal, not on a screen that is gone.
    if let app::Connection::Closed(why) = &app.connection
        && !app.quit
    {
        drop(terminal);
        anyhow::bail!("{why}");
    }
    Ok(())
}

/// The terminal in raw mode on the alternate screen, restored when dropped —
/// and by the panic hook, so a bug never leaves the member's shell unusable.
struct TerminalGuard(Terminal<CrosstermBackend<Stdout>>);

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard> {
        enable_raw_mode().context("the terminal does not support raw mode")?;
        let mut stdout = std::io::stdout();
        if let Err(error) = execute!(stdout, EnterAlternateScreen) {
            restore();
            return Err(error).context("entering the alternate screen");
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(terminal) => Ok(TerminalGuard(terminal)),
            Err(error) => {
                restore();
                Err(error).context("setting up the terminal")
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        let _ = self.0.show_cursor();
    }
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen);
}
