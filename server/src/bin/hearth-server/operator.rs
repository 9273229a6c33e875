//! `hearth-server accounts ...`: an operator's calls to a running server's
//! admin endpoints (PROTOCOL.md, "Operator endpoints"), with a token minted
//! from the server's secret.

use super::*;

/// Runs one `hearth-server accounts` command against the server at `server`.
pub(crate) async fn accounts_command(server: SocketAddr, secret: &Secret, action: &AccountsAction) -> Result<()> {
    let operator = UserId::new("operator").expect("a valid name");
    let token = auth::mint_with(secret, &operator, Duration::from_secs(60), auth::TokenKind::Admin, None);
    let (method, path, body) = match action {
        AccountsAction::Invite { uses, valid_for } => {
            ("POST", "/admin/invites", serde_json::json!({ "uses": uses, "valid_for_secs": valid_for.as_secs() }))
        }
        AccountsAction::Disable { name, reason } => {
            ("POST", "/admin/accounts/disable", serde_json::json!({ "name": name, "reason": reason }))
        }
        AccountsAction::Enable { name } => ("POST", "/admin/accounts/enable", serde_json::json!({ "name": name })),
        AccountsAction::Erase { name } => ("POST", "/admin/accounts/erase", serde_json::json!({ "name": name })),
        AccountsAction::List => ("GET", "/admin/accounts", serde_json::json!({})),
    };
    let (status, answer) = http_json(server, method, path, &token, &body)
        .await
        .with_context(|| format!("asking the server at {server} (is it running? pick it with --server ADDR)"))?;
    if !(200..300).contains(&status) {
        let message = answer["message"].as_str().unwrap_or("no reason given");
        bail!("the server refused ({status}): {message}");
    }
    match action {
        AccountsAction::Invite { .. } => {
            println!("{}", answer["code"].as_str().unwrap_or_default());
            eprintln!(
                "an invite for {} registration(s), valid until {} (Unix ms); give it with `hearth register --invite CODE`",
                answer["uses"], answer["expires_at"]
            );
        }
        AccountsAction::Disable { name, .. } => println!("disabled {name}; its connections were closed"),
        AccountsAction::Enable { name } => println!("enabled {name}; it can log in again"),
        AccountsAction::Erase { name } => println!(
            "erased {name}: {} message(s) in {} room(s) are tombstones; the name can never sign in again",
            answer["messages"], answer["rooms"]
        ),
        AccountsAction::List => {
            for account in answer["accounts"].as_array().into_iter().flatten() {
                let state = match account["disabled"].as_str() {
                    Some(why) => format!("disabled: {why}"),
                    None => "enabled".into(),
                };
                println!("{:<32} {state}", account["name"].as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// Messages sent per request: each request is answered well within the
/// server's deadline for an HTTP exchange, and importing goes on where the
/// last one stopped (the server skips what it has).
const IMPORT_CHUNK: usize = 1000;

/// `hearth-server import discord FILE --room NAME [--map FILE]`.
pub(crate) async fn import_discord(
    server: SocketAddr,
    secret: &Secret,
    file: &std::path::Path,
    room: &str,
    map: Option<&std::path::Path>,
) -> Result<()> {
    let read = |path: &std::path::Path| -> Result<serde_json::Value> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
    };
    let export = read(file)?;
    let messages = export["messages"]
        .as_array()
        .with_context(|| format!("{} has no \"messages\": is it a DiscordChatExporter JSON export?", file.display()))?;
    let mapping = match map {
        Some(path) => read(path)?,
        None => serde_json::json!({}),
    };
    let operator = UserId::new("operator").expect("a valid name");
    let mut total = std::collections::BTreeMap::<String, u64>::new();
    for chunk in messages.chunks(IMPORT_CHUNK) {
        let token = auth::mint_with(secret, &operator, Duration::from_secs(60), auth::TokenKind::Admin, None);
        let body = serde_json::json!({ "room": room, "mapping": mapping, "export": { "messages": chunk } });
        let (status, answer) = http_json(server, "POST", "/admin/import/discord", &token, &body)
            .await
            .with_context(|| format!("asking the server at {server} (is it running? pick it with --server ADDR)"))?;
        if !(200..300).contains(&status) {
            let message = answer["message"].as_str().unwrap_or("no reason given");
            bail!("the server refused ({status}): {message}");
        }
        for key in ["imported", "already", "skipped", "pinned", "pins_full"] {
            *total.entry(key.into()).or_default() += answer[key].as_u64().unwrap_or(0);
        }
    }
    println!(
        "{room}: {} message(s) imported, {} there already, {} skipped (Discord's own notices, empty ones), {} pinned{}",
        total["imported"],
        total["already"],
        total["skipped"],
        total["pinned"],
        if total["pins_full"] > 0 {
            format!(", {} not pinned (the room's pins are full)", total["pins_full"])
        } else {
            String::new()
        }
    );
    Ok(())
}

/// One plain HTTP/1.1 request with a JSON body, and the JSON answer.
async fn http_json(
    server: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<(u16, serde_json::Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(server).await?;
        let body = body.to_string();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {server}\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(1024 * 1024).read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(30), exchange).await.context("no answer in 30 s")??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").context("not an HTTP answer")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no HTTP status")?;
    let json = serde_json::from_str(body).with_context(|| format!("the server answered {status}: {}", body.trim()))?;
    Ok((status, json))
}
