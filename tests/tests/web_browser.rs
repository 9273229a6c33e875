//! The web page in a real browser (headless Chromium, `hearth_tests::browser`):
//! members chatting from two browsers, a newcomer let in and acknowledging
//! the rules, an invite link, a moderator's deletion, hostile text, a reload
//! and a sign-out, a phone's screen, a server restart and a cluster node
//! lost, an accessibility check, and the page's speed measured (printed, for
//! BENCHMARKS.md; not asserted). Screenshots go to `$HEARTH_SCREENSHOTS`
//! when it is set (the README's come from there).

use std::path::PathBuf;
use std::time::Duration;

use hearth_protocol::Codec;
use hearth_server::accounts::Registration;
use hearth_server::{Config, Storage};
use hearth_tests::browser::{Browser, Page};
use hearth_tests::*;

const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (375, 812);

fn open_registration(mut config: Config) -> Config {
    config.accounts.registration = Registration::Open;
    config
}

fn js(text: &str) -> String {
    serde_json::to_string(text).expect("a JSON string")
}

fn screenshots() -> Option<PathBuf> {
    std::env::var_os("HEARTH_SCREENSHOTS").map(PathBuf::from)
}

/// Creates an account on the sign-in screen and waits until the page is online.
async fn sign_up(page: &Page, name: &str) {
    page.wait_for("!!document.querySelector('.signin')", "the sign-in screen").await;
    page.eval(
        "[...document.querySelectorAll('.signin [role=tab]')].find(t => t.textContent.includes('Create')).click()",
    )
    .await;
    page.wait_for("!!document.querySelector('#f-invite')", "the sign-up form").await;
    submit_credentials(page, name).await;
}

/// Fills in the name and password on the sign-in screen, submits, and waits
/// until the page is online.
async fn submit_credentials(page: &Page, name: &str) {
    page.eval(&format!(
        "(() => {{ document.querySelector('#f-name').value = {}; document.querySelector('#f-password').value = 'correct horse'; document.querySelector('.signin form').requestSubmit(); }})()",
        js(name)
    ))
    .await;
    page.wait_for("window.hearth && hearth.conn.state === 'online'", "signed in and online").await;
}

/// Types `text` in the room's composer and sends it, as Enter would.
async fn say(page: &Page, text: &str) {
    page.wait_for("!!document.querySelector('.main .composer textarea')", "the composer").await;
    page.eval(&format!(
        "(() => {{ const t = document.querySelector('.main .composer textarea'); t.value = {}; t.dispatchEvent(new KeyboardEvent('keydown', {{ key: 'Enter', bubbles: true }})); }})()",
        js(text)
    ))
    .await;
}

/// Searches for `query` in the open search panel until a result's match
/// reads `marked`: the index follows the timeline by up to a second, so the
/// form is sent again while nothing is found.
async fn search(page: &Page, query: &str, marked: &str) {
    page.eval(&format!("document.querySelector('.panel input[type=search]').value = {}", js(query))).await;
    let script = format!(
        "(() => {{ const found = [...document.querySelectorAll('.panel mark')].some(m => m.textContent === {}); \
         if (!found) document.querySelector('.panel form.search button[type=submit]').click(); return found; }})()",
        js(marked)
    );
    page.wait_for(&script, &format!("a search for {query:?}, its match marked")).await;
}

/// A page at `size` of a member who signed up as `name` on room `room`,
/// once it receives the room.
async fn member_in(browser: &Browser, base: &str, room: &str, name: &str, size: (u32, u32)) -> Page {
    let page = browser.page(&format!("{base}/r/{room}"), size.0, size.1).await;
    sign_up(&page, name).await;
    page.wait_for(&format!("hearth.rooms.get('{room}')?.receiving === true"), &format!("{name} in {room}")).await;
    page
}

/// Clicks the button whose text or label starts with `label` inside `scope`.
async fn click(page: &Page, scope: &str, label: &str) {
    let script = format!(
        "(() => {{ const b = [...document.querySelectorAll({} + ' button')].find(b => (b.getAttribute('aria-label') || b.textContent).trim().startsWith({})); if (b) b.click(); return !!b; }})()",
        js(scope),
        js(label)
    );
    page.wait_for(&script, &format!("a button {label:?} in {scope}")).await;
}

/// Waits until a message with exactly `text` is in the page's timeline.
async fn shows(page: &Page, text: &str) {
    let script =
        format!("[...document.querySelectorAll('.main .msg .body')].some(b => b.textContent === {})", js(text));
    page.wait_for(&script, &format!("the message {text:?}")).await;
}

/// The texts of the messages in the page's timeline, in order.
async fn timeline(page: &Page) -> Vec<String> {
    let texts = page.eval("[...document.querySelectorAll('.main .msg .body')].map(b => b.textContent)").await;
    serde_json::from_value(texts).expect("a list of texts")
}

/// Errors a page reported, but for the expected `401` of asking for a
/// session before signing in.
fn unexpected_errors(page: &Page) -> Vec<String> {
    page.reports()
        .errors
        .into_iter()
        .filter(|e| !(e.contains("401") && e.contains("Failed to load resource")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_chat_from_two_browsers_and_hostile_text_stays_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(open_registration(test_config(Storage::Dir(dir.path().to_path_buf())))).await;
    let base = format!("http://{}", server.addr);
    let browser = Browser::start().await;

    let ada = browser.page(&format!("{base}/"), DESKTOP.0, DESKTOP.1).await;
    sign_up(&ada, "ada").await;
    // Creating a room the way a member does: the form in the rooms list.
    ada.eval("document.querySelector('#room-name').value = 'cameras'").await;
    click(&ada, ".rooms", "Create").await;
    ada.wait_for("location.pathname === '/r/cameras'", "the room opened").await;
    say(&ada, "Hello from ada").await;
    shows(&ada, "Hello from ada").await;

    // Bo follows a link to the room, on a phone.
    let bo = browser.page(&format!("{base}/r/cameras"), PHONE.0, PHONE.1).await;
    sign_up(&bo, "bo").await;
    shows(&bo, "Hello from ada").await;
    say(&bo, "Hi ada, bo here").await;
    shows(&ada, "Hi ada, bo here").await;
    say(&ada, "Welcome, @bo").await;
    shows(&bo, "Welcome, @bo").await;
    assert!(
        bo.eval("!!document.querySelector('.msg.mentioned')").await.as_bool().unwrap(),
        "a mention of bo is marked on bo's page"
    );
    // The mention is in bo's inbox too.
    click(&bo, ".topbar", "Mentions of you").await;
    bo.wait_for("document.querySelector('.panel')?.innerText.includes('Welcome, @bo')", "bo's mentions").await;
    click(&bo, ".panel header", "Close panel").await;
    // Search: the panel's form, the match marked, as text.
    click(&ada, ".topbar", "Search messages").await;
    search(&ada, "ADA, BO", "ada, bo").await;
    // A word found with its accents ignored is marked as it is written.
    say(&bo, "Café after the walk?").await;
    shows(&ada, "Café after the walk?").await;
    search(&ada, "cafe", "Café").await;
    if let Some(dir) = screenshots() {
        ada.screenshot(&dir.join("search-desktop.png")).await;
    }
    click(&ada, ".panel header", "Close panel").await;
    click(&ada, ".main .msg:last-of-type", "React").await;
    click(&ada, ".main .picker", "React 👍").await;
    bo.wait_for("document.querySelector('.reactions button')?.textContent === '👍 1'", "ada's reaction, counted").await;
    if let Some(dir) = screenshots() {
        ada.screenshot(&dir.join("desktop.png")).await;
        bo.screenshot(&dir.join("phone.png")).await;
    }

    // Text that would be markup, script or a trick is shown as text.
    let hostile = [
        "<img src=x onerror=\"window.__pwned = 1\">",
        "</script><script>window.__pwned = 1</script>",
        "javascript:window.__pwned=1 and [x](javascript:window.__pwned=1)",
        "see https://example.org/a?b=<c> and \u{202E}gnp.exe",
        "\u{1b}[2J bell\u{7}",
    ];
    for text in hostile {
        say(&ada, text).await;
    }
    let last_shown = "^[[2J bell^G";
    shows(&bo, last_shown).await;
    let checks = bo
        .eval(
            "(() => ({ pwned: window.__pwned, imgs: document.querySelectorAll('.msg .body img, .msg .body script').length, \
             links: [...document.querySelectorAll('.msg .body a')].map(a => [a.protocol, a.rel, a.target]), \
             bidi: [...document.querySelectorAll('.msg .body .ctl')].map(c => c.textContent) }))()",
        )
        .await;
    assert!(checks["pwned"].is_null(), "no script ran: {checks}");
    assert_eq!(checks["imgs"], 0, "no element came from a message: {checks}");
    for link in checks["links"].as_array().unwrap() {
        assert_eq!(link[0], "https:", "only http(s) links become anchors: {checks}");
        assert_eq!(link[1], "noopener noreferrer nofollow");
    }
    let marks: Vec<String> = serde_json::from_value(checks["bidi"].clone()).unwrap();
    assert!(marks.contains(&"<U+202E>".to_string()), "a bidi override is shown, not obeyed: {marks:?}");
    assert!(marks.contains(&"^[".to_string()) && marks.contains(&"^G".to_string()), "{marks:?}");
    for text in &hostile[..3] {
        shows(&bo, text).await;
    }

    // A phone shows the timeline and a way to the rooms.
    let layout = bo
        .eval(
            "(() => { const t = document.querySelector('.timeline').getBoundingClientRect(); \
             const b = document.querySelector('.menu-button').getBoundingClientRect(); \
             return { width: document.documentElement.scrollWidth, timeline: [t.left, t.right, t.height], menu: b.width > 0 && b.right <= 375 }; })()",
        )
        .await;
    assert!(layout["width"].as_f64().unwrap() <= 375.0, "nothing wider than the phone: {layout}");
    assert!(
        layout["timeline"][1].as_f64().unwrap() <= 375.0 && layout["timeline"][2].as_f64().unwrap() > 300.0,
        "{layout}"
    );
    assert_eq!(layout["menu"], true, "the rooms button is on screen: {layout}");
    click(&bo, ".topbar", "Rooms").await;
    bo.wait_for("getComputedStyle(document.querySelector('.rooms')).display !== 'none'", "the rooms list").await;
    click(&bo, ".rooms", "cameras").await;
    bo.wait_for("getComputedStyle(document.querySelector('.timeline')).display !== 'none'", "back in the room").await;

    // A reload keeps bo signed in, and the room as it was.
    bo.reload().await;
    bo.wait_for("window.hearth && hearth.conn.state === 'online' && hearth.me === 'bo'", "signed in after a reload")
        .await;
    shows(&bo, "Welcome, @bo").await;
    let cookie_hidden = bo.eval("document.cookie").await;
    assert_eq!(cookie_hidden, "", "the session cookie is not readable by the page's script");

    // Signing out ends it, across a reload too.
    click(&bo, ".topbar", "Sign out").await;
    bo.wait_for("!!document.querySelector('.signin')", "the sign-in screen after signing out").await;
    bo.reload().await;
    bo.wait_for("!!document.querySelector('.signin')", "still signed out after a reload").await;

    assert_eq!(unexpected_errors(&ada), Vec::<String>::new(), "ada's page");
    assert_eq!(unexpected_errors(&bo), Vec::<String>::new(), "bo's page");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_is_let_in_accepts_the_rules_and_a_moderators_deletion_reaches_every_page() {
    let server = TestServer::start(open_registration(test_config(Storage::Ephemeral { history_limit: 1000 }))).await;
    let base = format!("http://{}", server.addr);
    let browser = Browser::start().await;
    let ada = browser.page(&format!("{base}/"), DESKTOP.0, DESKTOP.1).await;
    sign_up(&ada, "ada").await;
    // The room's setup is not what this test is about: made through the page's connection.
    ada.eval(
        "(async () => { await hearth.conn.request('create_room', { room: 'darkroom', topic: 'Tell us what you shoot' }); \
         await hearth.conn.request('pin', { room: 'darkroom', note: 'Be kind. Film only.', title: 'Rules' }); \
         await hearth.conn.request('set_room', { room: 'darkroom', settings: { visibility: 'approval', rules_ack: true, welcome: 'Welcome to the darkroom!' } }); \
         await hearth.open('darkroom'); })()",
    )
    .await;
    say(&ada, "The darkroom is open").await;
    shows(&ada, "The darkroom is open").await;

    // Cy asks to join, with the answer to the room's question.
    let cy = browser.page(&format!("{base}/r/darkroom"), DESKTOP.0, DESKTOP.1).await;
    sign_up(&cy, "cy").await;
    cy.wait_for("!!document.querySelector('#join-note')", "the request form").await;
    cy.eval("document.querySelector('#join-note').value = 'I shoot a Leica M6, mostly Tri-X'").await;
    click(&cy, ".main", "Ask to join").await;
    cy.wait_for("document.body.innerText.includes('You asked to join')", "the request sent").await;

    // Ada sees it in the queue and lets cy in; cy hears it live.
    ada.wait_for("document.querySelector('.roomhead .badge')?.textContent === '1'", "the queue's count").await;
    click(&ada, ".roomhead", "Moderate").await;
    ada.wait_for("document.querySelector('.panel').innerText.includes('I shoot a Leica M6')", "the request's note")
        .await;
    if let Some(dir) = screenshots() {
        ada.screenshot(&dir.join("moderation.png")).await;
    }
    click(&ada, ".panel", "Let in").await;
    cy.wait_for("document.body.innerText.includes('Welcome to the darkroom!')", "the room's welcome").await;
    cy.wait_for("document.body.innerText.includes('Be kind. Film only.')", "the rules, before anything else").await;
    click(&cy, ".main .notice", "I accept the rules").await;
    cy.wait_for("!hearth.needsRulesAck(hearth.rooms.get('darkroom'))", "the rules acknowledged").await;
    say(&cy, "Thanks for letting me in").await;
    shows(&ada, "Thanks for letting me in").await;

    // Dee comes in through an invite link ada makes in her page.
    click(&ada, ".panel [role=tablist]", "Invites").await;
    ada.wait_for("!!document.querySelector('#invite-signup')", "the invites tab").await;
    ada.eval("document.querySelector('#invite-signup').value = 'from-the-operator'").await;
    click(&ada, ".panel", "Make an invite link").await;
    let link = ada.wait_for("document.querySelector('#invite-link')?.value", "the invite link").await;
    let link = link.as_str().unwrap().to_string();
    assert!(
        link.starts_with(&format!("{base}/invite/")) && link.ends_with("?room=darkroom&signup=from-the-operator"),
        "{link}"
    );
    let dee = browser.page(&link, PHONE.0, PHONE.1).await;
    dee.wait_for("document.body.innerText.includes('invited to the room “darkroom”')", "the invitation said").await;
    let prefilled = dee.wait_for("document.querySelector('#f-invite')?.value", "the sign-up form, filled in").await;
    assert_eq!(prefilled, "from-the-operator", "the link's sign-up code is in the form");
    sign_up(&dee, "dee").await;
    dee.wait_for("hearth.rooms.get('darkroom')?.receiving === true", "dee in the room").await;
    dee.wait_for("location.pathname === '/r/darkroom'", "the room's address").await;
    click(&dee, ".main .notice", "I accept the rules").await;
    say(&dee, "Dee, by invitation").await;
    shows(&cy, "Dee, by invitation").await;

    // Ada deletes cy's message: every page shows a tombstone.
    ada.eval("window.confirm = () => true").await;
    ada.eval(
        "(() => { const m = [...document.querySelectorAll('.main .msg')].find(m => m.querySelector('.body').textContent === 'Thanks for letting me in'); \
         m.querySelector('button[aria-label=Delete]').click(); })()",
    )
    .await;
    for page in [&ada, &cy, &dee] {
        page.wait_for(
            "[...document.querySelectorAll('.main .msg .body.deleted')].length === 1 && !document.body.innerText.includes('Thanks for letting me in')",
            "the tombstone",
        )
        .await;
    }
    for page in [&ada, &cy, &dee] {
        assert_eq!(unexpected_errors(page), Vec::<String>::new());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_resumes_after_a_restart_with_nothing_missed_and_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let config = open_registration(test_config(Storage::Dir(dir.path().to_path_buf())));
    let server = TestServer::start(config.clone()).await;
    let addr = server.addr;
    let base = format!("http://{addr}");
    let browser = Browser::start().await;
    let ada = browser.page(&format!("{base}/"), DESKTOP.0, DESKTOP.1).await;
    sign_up(&ada, "ada").await;
    ada.eval("hearth.createRoom('cameras')").await;
    ada.wait_for("location.pathname === '/r/cameras'", "the room").await;
    let bo = browser.page(&format!("{base}/r/cameras"), DESKTOP.0, DESKTOP.1).await;
    sign_up(&bo, "bo").await;
    say(&ada, "before the restart").await;
    shows(&bo, "before the restart").await;

    server.stop().await;
    for page in [&ada, &bo] {
        page.wait_for("hearth.conn.state === 'reconnecting'", "the page noticing").await;
        let status = page.eval("document.querySelector('.status').textContent").await;
        assert!(status.as_str().unwrap().contains("reconnecting"), "said plainly: {status}");
    }
    // Back, and messages posted by the terminal client before the pages return.
    let server = TestServer::start_at(config, addr).await;
    let mut cy = server.client("cy", Codec::MsgPack).await;
    cy.join(&room("cameras")).await.unwrap();
    for n in 1..=5 {
        cy.send(&room("cameras"), &format!("while you were away {n}")).await.unwrap();
    }
    let expected: Vec<String> = ["before the restart"]
        .into_iter()
        .map(String::from)
        .chain((1..=5).map(|n| format!("while you were away {n}")))
        .collect();
    for page in [&ada, &bo] {
        page.wait_for("hearth.conn.state === 'online'", "back online").await;
        shows(page, "while you were away 5").await;
        tokio::time::sleep(Duration::from_millis(300)).await; // anything twice would be drawn by now
        assert_eq!(timeline(page).await, expected, "each once, in order");
    }
    say(&bo, "and after").await;
    shows(&ada, "and after").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_on_two_nodes_of_a_cluster_chat_and_resume_after_one_node_stops() {
    let redis = hearth_testkit::RedisServer::start().await;
    let config = open_registration(cluster_config(&redis.url(), "web"));
    let one = TestServer::start(config.clone()).await;
    let two = TestServer::start(config.clone()).await;
    let browser = Browser::start().await;
    let ada = browser.page(&format!("http://{}/", one.addr), DESKTOP.0, DESKTOP.1).await;
    sign_up(&ada, "ada").await;
    ada.eval("hearth.createRoom('cameras')").await;
    ada.wait_for("location.pathname === '/r/cameras'", "the room").await;
    let bo = browser.page(&format!("http://{}/r/cameras", two.addr), DESKTOP.0, DESKTOP.1).await;
    sign_up(&bo, "bo").await;
    say(&ada, "from node one").await;
    shows(&bo, "from node one").await;
    say(&bo, "from node two").await;
    shows(&ada, "from node two").await;

    // Node two stops; ada goes on through node one; node two comes back.
    let addr = two.addr;
    two.stop().await;
    bo.wait_for("hearth.conn.state === 'reconnecting'", "bo's page noticing").await;
    for n in 1..=3 {
        say(&ada, &format!("while node two was down {n}")).await;
    }
    shows(&ada, "while node two was down 3").await;
    let two = TestServer::start_at(config, addr).await;
    bo.wait_for("hearth.conn.state === 'online'", "bo back").await;
    shows(&bo, "while node two was down 3").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expected = [
        "from node one",
        "from node two",
        "while node two was down 1",
        "while node two was down 2",
        "while node two was down 3",
    ];
    assert_eq!(timeline(&bo).await, expected, "each once, in order");
    say(&bo, "back on node two").await;
    shows(&ada, "back on node two").await;
    one.stop().await;
    two.stop().await;
}

/// An accessibility check written for these tests (see ARCHITECTURE.md,
/// "The web page"): the serious and critical kinds of axe-core's rules —
/// names for controls and images, labels for fields, contrast (AA), ids,
/// references, the document's language and title.
const ACCESSIBILITY: &str = include_str!("web_a11y.js");

async fn accessibility(page: &Page, screen: &str) {
    let problems = page.eval(ACCESSIBILITY).await;
    let problems: Vec<String> = serde_json::from_value(problems).expect("a list of problems");
    assert!(problems.is_empty(), "{screen}: {problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_screens_pass_an_accessibility_check_in_both_colour_schemes() {
    let server = TestServer::start(open_registration(test_config(Storage::Ephemeral { history_limit: 1000 }))).await;
    let browser = Browser::start().await;
    let ada = browser.page(&format!("http://{}/", server.addr), DESKTOP.0, DESKTOP.1).await;
    ada.wait_for("!!document.querySelector('.signin')", "the sign-in screen").await;
    accessibility(&ada, "the sign-in screen").await;
    sign_up(&ada, "ada").await;
    ada.eval(
        "(async () => { await hearth.conn.request('create_room', { room: 'cameras', visibility: 'approval' }); \
         await hearth.conn.request('pin', { room: 'cameras', note: 'Be kind.', title: 'Rules' }); \
         await hearth.open('cameras'); })()",
    )
    .await;
    say(&ada, "Hello, see https://example.org").await;
    shows(&ada, "Hello, see https://example.org").await;
    let bo = server.client("bo", Codec::Json).await;
    let note = hearth_protocol::Note::new("I develop at home").unwrap();
    bo.request(hearth_protocol::ops::RequestJoin { room: room("cameras"), note }).await.unwrap();
    for scheme in ["light", "dark"] {
        ada.emulate_color_scheme(scheme).await;
        accessibility(&ada, &format!("the main screen ({scheme})")).await;
        click(&ada, ".roomhead", "Pinned").await;
        ada.wait_for("document.querySelector('.panel').innerText.includes('Be kind.')", "the pins").await;
        accessibility(&ada, &format!("the pins panel ({scheme})")).await;
        click(&ada, ".roomhead", "Moderate").await;
        ada.wait_for("document.querySelector('.panel').innerText.includes('I develop at home')", "the queue").await;
        accessibility(&ada, &format!("the moderation queue ({scheme})")).await;
        // The owner's settings, with what erasure does to members' words.
        click(&ada, ".panel [role=tablist]", "Settings").await;
        ada.wait_for("!!document.querySelector('.panel #s-erased')", "the owner's erasure choice").await;
        accessibility(&ada, &format!("the room's settings ({scheme})")).await;
        // One's own row in the members panel: download and erase.
        click(&ada, ".panel header", "Close panel").await;
        click(&ada, ".roomhead", "Members").await;
        ada.wait_for("!!document.querySelector('.panel form.erase')", "the erase form").await;
        ada.eval("document.querySelector('.panel form.erase').closest('details').open = true").await;
        accessibility(&ada, &format!("the members panel with the erase form ({scheme})")).await;
        if let Some(dir) = screenshots() {
            ada.screenshot(&dir.join(format!("members-erase-{scheme}.png"))).await;
        }
        click(&ada, ".panel header", "Close panel").await;
        click(&ada, ".topbar", "Search messages").await;
        search(&ada, "example", "example").await;
        accessibility(&ada, &format!("the search panel with a result ({scheme})")).await;
        click(&ada, ".panel header", "Close panel").await;
        click(&ada, ".topbar", "Notifications").await;
        ada.wait_for("!!document.querySelector('.panel #push-level')", "the notifications panel").await;
        accessibility(&ada, &format!("the notifications panel ({scheme})")).await;
        click(&ada, ".panel header", "Close panel").await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_first_render_of_a_long_room_and_a_burst_of_a_thousand() {
    let server = TestServer::start(open_registration(test_config(Storage::Ephemeral { history_limit: 5000 }))).await;
    let mut cy = server.client("cy", Codec::MsgPack).await;
    create_room(&cy, "busy", None).await.unwrap();
    cy.join(&room("busy")).await.unwrap();
    for n in 1..=200 {
        cy.send(&room("busy"), &format!("earlier message {n}")).await.unwrap();
    }
    let browser = Browser::start().await;
    let ada = browser.page(&format!("http://{}/", server.addr), DESKTOP.0, DESKTOP.1).await;
    sign_up(&ada, "ada").await;
    // A fresh load of the room's address, signed in: from navigation to the
    // newest message drawn, in the page's own clock.
    ada.goto(&format!("http://{}/r/busy", server.addr)).await;
    let first = ada
        .wait_for(
            "[...document.querySelectorAll('.main .msg .body')].some(b => b.textContent === 'earlier message 200') && performance.now()",
            "the room drawn",
        )
        .await;
    let shown = ada.eval("document.querySelectorAll('.main .msg').length").await;
    println!(
        "first render: a room of 200 messages, the newest {shown} drawn {:.0} ms after navigation",
        first.as_f64().unwrap()
    );

    // A burst: a thousand messages as fast as one client sends them.
    ada.eval(
        "(() => { window.__stall = 0; let last = performance.now(); window.__beat = setInterval(() => { const now = performance.now(); \
         window.__stall = Math.max(window.__stall, now - last); last = now; }, 10); \
         window.__first = null; new MutationObserver(() => { if (window.__first === null) window.__first = performance.now(); }) \
         .observe(document.querySelector('.timeline'), { childList: true }); })()",
    )
    .await;
    let burst = tokio::time::timeout(Duration::from_secs(60), async {
        for n in 1..=1000 {
            cy.send(&room("busy"), &format!("burst {n}")).await.unwrap();
        }
    });
    burst.await.expect("the burst sent in time");
    let done = ada
        .wait_for(
            "[...document.querySelectorAll('.main .msg .body')].some(b => b.textContent === 'burst 1000') && performance.now()",
            "the last of the burst",
        )
        .await;
    let result = ada.eval("({ first: window.__first, stall: window.__stall })").await;
    let texts = timeline(&ada).await;
    let burst_shown: Vec<&String> = texts.iter().filter(|t| t.starts_with("burst ")).collect();
    assert_eq!(burst_shown.len(), 1000, "every message of the burst, once");
    assert!(burst_shown.windows(2).all(|w| {
        let n = |t: &str| t["burst ".len()..].parse::<u32>().unwrap();
        n(w[0]) + 1 == n(w[1])
    }));
    println!(
        "burst: 1000 messages, the last drawn {:.0} ms after the first; the page's longest stall {:.0} ms",
        done.as_f64().unwrap() - result["first"].as_f64().unwrap(),
        result["stall"].as_f64().unwrap()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_and_the_moderators_tools_work_from_the_page() {
    let server = TestServer::start(open_registration(test_config(Storage::Ephemeral { history_limit: 1000 }))).await;
    let browser = Browser::start().await;
    let ada = browser.page(&format!("http://{}/", server.addr), DESKTOP.0, DESKTOP.1).await;
    sign_up(&ada, "ada").await;
    ada.eval("hearth.createRoom('cameras')").await;
    ada.wait_for("location.pathname === '/r/cameras'", "the room").await;
    let mut bo = server.client("bo", Codec::Json).await;
    bo.join(&room("cameras")).await.unwrap();
    bo.send(&room("cameras"), "Which developer for Tri-X?").await.unwrap();
    shows(&ada, "Which developer for Tri-X?").await;

    // A reply in the thread, from the thread's panel; the root counts it.
    click(&ada, ".main .msg:last-of-type", "Reply in thread").await;
    ada.wait_for("document.querySelector('.panel')?.innerText.includes('Which developer')", "the thread").await;
    ada.eval(
        "(() => { const t = document.querySelector('.panel .composer textarea'); t.value = 'HC-110, dilution B'; \
         t.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true })); })()",
    )
    .await;
    ada.wait_for(
        "document.querySelector('.panel .thread')?.innerText.includes('HC-110, dilution B')",
        "the reply in the thread",
    )
    .await;
    ada.wait_for("document.querySelector('.main .replies')?.textContent === '1 reply'", "the root's count").await;
    let reply =
        until_event(&mut bo, "the reply", |e| matches!(e, hearth_protocol::Event::Message(m) if m.thread.is_some()))
            .await;
    assert!(format!("{reply:?}").contains("HC-110"), "{reply:?}");
    click(&ada, ".panel header", "Close panel").await;

    // Muting bo from the members panel holds for bo's next post.
    click(&ada, ".roomhead", "Members").await;
    ada.eval("document.querySelector('.panel details').open = true").await;
    click(&ada, ".panel details", "Mute").await;
    ada.wait_for("document.querySelector('.panel').innerText.includes('muted for')", "bo shown muted").await;
    let refused = code(bo.send(&room("cameras"), "still here?").await);
    assert_eq!(refused, hearth_protocol::ErrorCode::Muted);

    // Slow mode from the settings; the log shows both; the health chart draws.
    click(&ada, ".roomhead", "Moderate").await;
    click(&ada, ".panel [role=tablist]", "Settings").await;
    ada.eval("document.querySelector('#s-slow').value = '30'").await;
    click(&ada, ".panel form", "Save").await;
    ada.wait_for("hearth.rooms.get('cameras').info.slow_mode_secs === 30", "slow mode set").await;
    // Probation from the settings: a newcomer's link is held for review, and
    // posted from the held-posts tab.
    ada.eval("document.querySelector('#s-slow').value = '0'; document.querySelector('#s-prob').value = '7'").await;
    click(&ada, ".panel form", "Save").await;
    ada.wait_for("hearth.rooms.get('cameras').info.probation_secs === 7 * 86400", "probation set").await;
    let mut cy = server.client("cy", Codec::Json).await;
    cy.join(&room("cameras")).await.unwrap();
    let held = cy.send(&room("cameras"), "my scans: https://example.org/scans").await.unwrap();
    assert!(held.held, "a newcomer's link is held");
    ada.wait_for("document.querySelector('.roomhead .badge')?.textContent === '1'", "the held post counted").await;
    click(&ada, ".panel [role=tablist]", "Held posts").await;
    ada.wait_for("document.querySelector('.panel').innerText.includes('my scans')", "the held post").await;
    click(&ada, ".panel", "Post it").await;
    shows(&ada, "my scans: https://example.org/scans").await;
    click(&ada, ".panel [role=tablist]", "Log").await;
    ada.wait_for(
        "document.querySelector('.panel').innerText.includes('mute') && document.querySelector('.panel').innerText.includes('set room')",
        "the moderation log",
    )
    .await;
    click(&ada, ".panel [role=tablist]", "Health").await;
    ada.wait_for("document.querySelectorAll('.panel .chart svg rect').length === 10", "the health chart's bars").await;
    let label = ada.eval("document.querySelector('.panel .chart svg').getAttribute('aria-label')").await;
    assert!(label.as_str().unwrap().contains("This week"), "the chart says what it shows: {label}");
    assert_eq!(unexpected_errors(&ada), Vec::<String>::new());
    server.stop().await;
}

/// Signs in an existing account on the sign-in screen.
async fn sign_in(page: &Page, name: &str) {
    page.wait_for("!!document.querySelector('.signin #f-password')", "the sign-in form").await;
    submit_credentials(page, name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_on_one_device_clears_the_unread_count_on_the_other() {
    let server = TestServer::start(open_registration(test_config(Storage::Ephemeral { history_limit: 1000 }))).await;
    let base = format!("http://{}", server.addr);
    let browser = Browser::start().await;
    let ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "cameras", None).await.unwrap();
    create_room(&ada, "lobby", None).await.unwrap();

    // Bo at his desk, in the lobby; cameras waits in his list.
    let desk = browser.page(&format!("{base}/r/cameras"), DESKTOP.0, DESKTOP.1).await;
    sign_up(&desk, "bo").await;
    desk.eval("hearth.open('lobby')").await;
    desk.wait_for("hearth.rooms.get('lobby')?.receiving === true", "the lobby").await;
    for n in 1..=3 {
        ada.send(&room("cameras"), &format!("news {n}")).await.unwrap();
    }
    let badge = "[...document.querySelectorAll('.rooms li button')].find(b => b.textContent.includes('cameras'))?.querySelector('.badge')?.textContent";
    desk.wait_for(&format!("{badge} === '3'"), "three unread in cameras").await;

    // On his phone, a new sign-in opens his first room, cameras: reading it
    // there clears it on the desk too.
    let phone = browser.page(&format!("{base}/"), PHONE.0, PHONE.1).await;
    sign_in(&phone, "bo").await;
    phone.wait_for("hearth.current === 'cameras'", "cameras opened").await;
    shows(&phone, "news 3").await;
    desk.wait_for(&format!("({badge}) === undefined"), "the desk's count cleared by the phone").await;

    // A reload on the desk still knows.
    desk.reload().await;
    desk.wait_for(
        "window.hearth && hearth.conn.state === 'online' && hearth.rooms.get('cameras')?.unread === 0",
        "still read",
    )
    .await;
    server.stop().await;
}

/// A search result far back in a busy room: "Show the message" loads older
/// pages until the message is there, and shows it, on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_result_far_back_is_shown_in_its_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(open_registration(test_config(Storage::Dir(dir.path().to_path_buf())))).await;
    let ada = server.client("ada", Codec::MsgPack).await;
    create_room(&ada, "darkroom", None).await.unwrap();
    ada.send(&room("darkroom"), "the film recipe: rodinal 1+50, 13 minutes").await.unwrap();
    for n in 0..250 {
        ada.send(&room("darkroom"), &format!("chatter {n}")).await.unwrap();
    }
    let browser = Browser::start().await;
    let page = browser.page(&format!("http://{}/", server.addr), PHONE.0, PHONE.1).await;
    sign_up(&page, "ada").await;
    click(&page, ".topbar", "Search messages").await;
    search(&page, "Rodinal", "rodinal").await;
    if let Some(dir) = screenshots() {
        page.screenshot(&dir.join("search-phone.png")).await;
    }
    click(&page, ".panel li", "Show the message").await;
    page.wait_for(
        "(() => { const m = document.querySelector('.msg.found'); if (!m) return false; \
         const r = m.getBoundingClientRect(); \
         return m.textContent.includes('rodinal 1+50') && r.top >= 0 && r.bottom <= innerHeight; })()",
        "the recipe shown in the room, in view",
    )
    .await;
    if let Some(dir) = screenshots() {
        page.screenshot(&dir.join("search-found-phone.png")).await;
    }
    assert_eq!(unexpected_errors(&page), Vec::<String>::new());
    server.stop().await;
}

/// A direct conversation from the members panel: the other member's page
/// lists it under "Direct messages" as it starts, and both chat in it; a
/// block folds the blocked member's messages away (one click shows one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_conversation_starts_from_the_members_panel_and_a_block_folds_messages() {
    let server = TestServer::start(open_registration(test_config(Storage::Ephemeral { history_limit: 1000 }))).await;
    let base = format!("http://{}", server.addr);
    let owner = server.client("owner", Codec::MsgPack).await;
    create_room(&owner, "cameras", None).await.unwrap();
    let browser = Browser::start().await;
    let ada = browser.page(&format!("{base}/r/cameras"), DESKTOP.0, DESKTOP.1).await;
    sign_up(&ada, "ada").await;
    let bo = member_in(&browser, &base, "cameras", "bo", PHONE).await;
    bo.wait_for("hearth.rooms.get('cameras').members.has('ada')", "ada among the members").await;

    // Bo writes to ada from the members panel.
    click(&bo, ".roomhead", "Members").await;
    click(&bo, ".panel li", "Message ada directly").await;
    bo.wait_for("hearth.rooms.get(hearth.current)?.info?.visibility === 'direct'", "the conversation open").await;
    say(&bo, "are you coming to the photo walk?").await;
    shows(&bo, "are you coming to the photo walk?").await;

    // Ada's page lists it, named by who is in it, and shows the message.
    let listed = "[...document.querySelectorAll('.rooms nav h2')].some(h => h.textContent === 'Direct messages') && \
                  [...document.querySelectorAll('.rooms li button')].some(b => b.getAttribute('aria-label').startsWith('conversation with bo'))";
    ada.wait_for(listed, "the conversation in ada's list").await;
    click(&ada, ".rooms li", "conversation with bo").await;
    shows(&ada, "are you coming to the photo walk?").await;
    ada.wait_for(
        "[...document.querySelectorAll('.main .event')].some(e => e.textContent.includes('bo started this conversation with ada'))",
        "how it began, from history",
    )
    .await;
    say(&ada, "yes, with the Rolleiflex").await;
    shows(&bo, "yes, with the Rolleiflex").await;
    if let Some(dir) = screenshots() {
        ada.screenshot(&dir.join("direct-desktop.png")).await;
        bo.screenshot(&dir.join("direct-phone.png")).await;
    }

    // Ada blocks bo: his messages in the room fold away for her, and show on a click.
    ada.eval("window.confirm = () => true").await;
    ada.eval("hearth.open('cameras')").await;
    click(&ada, ".roomhead", "Members").await;
    click(&ada, ".panel li", "Block bo").await;
    ada.wait_for("hearth.blocked.has('bo')", "bo blocked").await;
    owner.send(&room("cameras"), "walk starts at ten").await.unwrap();
    bo.eval("hearth.open('cameras')").await;
    say(&bo, "see you all there").await;
    ada.wait_for(
        "[...document.querySelectorAll('.main .msg.folded')].some(m => m.textContent.includes('someone you blocked'))",
        "bo's message folded",
    )
    .await;
    shows(&ada, "walk starts at ten").await;
    assert!(!timeline(&ada).await.contains(&"see you all there".to_string()), "folded until asked");
    if let Some(dir) = screenshots() {
        ada.screenshot(&dir.join("blocked-folded-desktop.png")).await;
    }
    click(&ada, ".main .msg.folded", "Show").await;
    shows(&ada, "see you all there").await;

    // What ada hears of the room while away: kept by the server.
    click(&ada, ".topbar", "Notifications").await;
    ada.wait_for("document.querySelector('.panel #push-level')?.disabled === false", "the notifications panel").await;
    ada.eval(
        "(() => { const s = document.querySelector('.panel #push-level'); s.value = 'nothing';          s.dispatchEvent(new Event('change')); })()",
    )
    .await;
    ada.wait_for(
        "(async () => (await hearth.conn.request('push_levels')).levels.some(l => l.room === 'cameras' && l.level === 'nothing'))()",
        "the level kept by the server",
    )
    .await;
    if let Some(dir) = screenshots() {
        ada.screenshot(&dir.join("notifications-desktop.png")).await;
    }
    assert_eq!(unexpected_errors(&ada), Vec::<String>::new());
    assert_eq!(unexpected_errors(&bo), Vec::<String>::new());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_a_phone_reaches_the_moderator_page_and_is_acted_on_in_one_step() {
    let server = TestServer::start(open_registration(test_config(Storage::Ephemeral { history_limit: 1000 }))).await;
    let base = format!("http://{}", server.addr);
    let owner = server.client("owner", Codec::MsgPack).await;
    create_room(&owner, "cameras", None).await.unwrap();
    let browser = Browser::start().await;
    let mia = member_in(&browser, &base, "cameras", "mia", DESKTOP).await;
    let moderator = hearth_protocol::ops::SetRole {
        room: room("cameras"),
        user: user("mia"),
        role: hearth_protocol::Role::Moderator,
        expires_at: None,
        title: None,
    };
    owner.request(moderator).await.unwrap();
    mia.wait_for("hearth.rooms.get('cameras').role === 'moderator'", "mia a moderator").await;
    let dee = member_in(&browser, &base, "cameras", "dee", PHONE).await;
    let mut mallory = server.client("mallory", Codec::Json).await;
    mallory.join(&room("cameras")).await.unwrap();
    mallory.send(&room("cameras"), "cheap lenses at spam.example").await.unwrap();
    shows(&dee, "cheap lenses at spam.example").await;

    // Dee reports it from the message's own button, on a phone.
    click(&dee, ".main .msg:last-of-type", "Report to the moderators").await;
    dee.wait_for("!!document.querySelector('.panel #report-category')", "the report form").await;
    dee.eval(
        "(() => { document.querySelector('#report-category').value = 'spam'; \
         document.querySelector('#report-note').value = 'third shop link today'; })()",
    )
    .await;
    accessibility(&dee, "the report form").await;
    click(&dee, ".panel form", "Send report").await;
    dee.wait_for("document.querySelector('.panel [role=status]').textContent.startsWith('Thank you')", "thanked").await;
    if let Some(dir) = screenshots() {
        dee.screenshot(&dir.join("report-phone.png")).await;
    }
    click(&dee, ".panel header", "Close panel").await;

    // Mia's page counts it and lists it, with who and why.
    mia.wait_for("document.querySelector('.roomhead .badge')?.textContent === '1'", "the report counted").await;
    click(&mia, ".roomhead", "Moderate").await;
    click(&mia, ".panel [role=tablist]", "Reports").await;
    mia.wait_for(
        "document.querySelector('.panel').innerText.includes('spam or advertising — reported by dee') && \
         document.querySelector('.panel').innerText.includes('third shop link today')",
        "the report in the queue",
    )
    .await;
    accessibility(&mia, "the reports queue").await;
    if let Some(dir) = screenshots() {
        mia.screenshot(&dir.join("reports-desktop.png")).await;
    }
    // A mute with a reason resolves it: the queue empties, mallory is muted.
    mia.eval("document.querySelector('.panel [role=tabpanel] input').value = 'no shop links'").await;
    click(&mia, ".panel [role=tabpanel]", "Mute").await;
    mia.wait_for("document.querySelector('.panel').innerText.includes('No open reports.')", "the queue empty").await;
    assert_eq!(code(mallory.send(&room("cameras"), "but").await), hearth_protocol::ErrorCode::Muted);
    mia.wait_for(
        "[...document.querySelectorAll('.main .event')].some(e => e.textContent.includes('resolved the reports on a message by mallory: author muted'))",
        "the resolution in mia's timeline",
    )
    .await;

    // A warning from the members panel, with its reason; mallory reads it.
    click(&mia, ".panel header", "Close panel").await;
    click(&mia, ".roomhead", "Members").await;
    mia.eval(
        "(() => { const d = [...document.querySelectorAll('.panel details')].find(d => d.textContent.includes('Act on mallory')); \
         d.open = true; d.querySelector('input').value = 'keep to cameras'; \
         [...d.querySelectorAll('button')].find(b => b.textContent === 'Warn').click(); })()",
    )
    .await;
    let warnings = hearth_protocol::ops::Warnings { room: room("cameras"), user: None };
    let wait = std::time::Instant::now();
    while mallory.request(warnings.clone()).await.unwrap().warnings.is_empty() {
        assert!(wait.elapsed() < std::time::Duration::from_secs(10), "the warning reached the server");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    mia.wait_for(
        "[...document.querySelectorAll('.main .event')].some(e => e.textContent.includes('mia warned mallory (keep to cameras)'))",
        "the warning in the timeline",
    )
    .await;
    // A bad day: mia locks the doors from the settings; every page says so.
    click(&mia, ".roomhead", "Moderate").await;
    click(&mia, ".panel [role=tablist]", "Settings").await;
    click(&mia, ".panel fieldset", "Lock the room").await;
    dee.wait_for(
        "document.querySelector('.roomhead .lock')?.textContent.startsWith('🔒 No new members')",
        "the lock shown",
    )
    .await;
    let mut eve = server.client("eve", Codec::Json).await;
    assert_eq!(code(eve.join(&room("cameras")).await), hearth_protocol::ErrorCode::Locked);
    if let Some(dir) = screenshots() {
        mia.screenshot(&dir.join("lockdown-desktop.png")).await;
        dee.screenshot(&dir.join("lockdown-phone.png")).await;
    }
    click(&mia, ".panel fieldset", "Lift the lockdown").await;
    dee.wait_for("!document.querySelector('.roomhead .lock')", "the lock lifted").await;
    eve.join(&room("cameras")).await.unwrap();
    // A word filter rule from the settings: eve's post with it is refused.
    mia.eval(
        "(() => { document.querySelector('#filter-pattern').value = 'cheap lenses'; \
         document.querySelector('#filter-action').value = 'refuse'; \
         document.querySelector('#filter-reason').value = 'no shops here'; })()",
    )
    .await;
    click(&mia, ".panel fieldset", "Add the rule").await;
    mia.wait_for(
        "document.querySelector('.panel [aria-label=\"Word filter rules\"]')?.innerText.includes('cheap lenses')",
        "the rule listed",
    )
    .await;
    accessibility(&mia, "the settings with the lockdown and the word filter").await;
    let refused = refusal(eve.send(&room("cameras"), "cheap lenses again").await);
    assert!(
        refused.code == hearth_protocol::ErrorCode::Filtered && refused.message.contains("no shops here"),
        "{refused:?}"
    );
    // Dee, a member, never sees the queue; mallory's connection never got the report.
    assert_eq!(dee.eval("document.querySelector('.roomhead .badge')").await, serde_json::Value::Null);
    while let Ok(Some(event)) = mallory.next_event_within(std::time::Duration::from_millis(200)).await {
        assert!(!matches!(event, hearth_protocol::Event::Report(_)), "{event:?}");
    }
    assert_eq!(unexpected_errors(&mia), Vec::<String>::new());
    assert_eq!(unexpected_errors(&dee), Vec::<String>::new());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_erases_their_account_from_the_page_and_others_see_only_tombstones() {
    let server = TestServer::start(open_registration(test_config(Storage::Ephemeral { history_limit: 1000 }))).await;
    let base = format!("http://{}", server.addr);
    let owner = server.client("owner", Codec::MsgPack).await;
    create_room(&owner, "cameras", None).await.unwrap();
    let browser = Browser::start().await;
    let mia = member_in(&browser, &base, "cameras", "mia", DESKTOP).await;
    let eve = member_in(&browser, &base, "cameras", "eve", PHONE).await;
    say(&eve, "my quokka portraits").await;
    shows(&mia, "my quokka portraits").await;

    // Eve opens her own row in the members panel and erases, typing her name.
    click(&eve, ".roomhead", "Members").await;
    eve.wait_for("!!document.querySelector('.panel form.erase')", "the erase form").await;
    eve.eval("document.querySelector('.panel form.erase').closest('details').open = true").await;
    accessibility(&eve, "the erase form").await;
    if let Some(dir) = screenshots() {
        eve.screenshot(&dir.join("erase-phone.png")).await;
    }
    click(&eve, ".panel form.erase", "Erase my account").await;
    eve.wait_for(
        "document.querySelector('.panel form.erase [role=status]').textContent.startsWith('Type eve')",
        "asked to confirm",
    )
    .await;
    eve.eval("document.querySelector('#erase-confirm').value = 'eve'").await;
    click(&eve, ".panel form.erase", "Erase my account").await;

    // Mia's page: the message is a tombstone, and says why.
    mia.wait_for(
        "!document.querySelector('.main').innerText.includes('my quokka portraits') && \
         document.querySelector('.main').innerText.includes('Gone: its author erased their account.')",
        "the tombstone on mia's page",
    )
    .await;
    mia.wait_for(
        "[...document.querySelectorAll('.main .event')].some(e => e.textContent.includes('eve erased their account'))",
        "the erasure in mia's timeline",
    )
    .await;
    // And after a reload, from history.
    mia.reload().await;
    mia.wait_for("hearth.rooms.get('cameras')?.receiving === true", "mia back").await;
    mia.wait_for(
        "document.querySelector('.main').innerText.includes('Gone: its author erased their account.')",
        "the tombstone from history",
    )
    .await;
    assert!(!mia.eval("document.body.innerText").await.to_string().contains("quokka"));
    if let Some(dir) = screenshots() {
        mia.screenshot(&dir.join("erased-desktop.png")).await;
    }
    let errors = unexpected_errors(&mia);
    assert!(errors.is_empty(), "{errors:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_imported_from_discord_show_their_authors_and_times_there() {
    let server = TestServer::start(open_registration(test_config(Storage::Ephemeral { history_limit: 1000 }))).await;
    let base = format!("http://{}", server.addr);
    let owner = server.client("owner", Codec::MsgPack).await;
    create_room(&owner, "darkroom", None).await.unwrap();
    let export: serde_json::Value = serde_json::from_str(include_str!("discord_export.json")).unwrap();
    let body = serde_json::json!({ "room": "darkroom", "mapping": { "bob_films": "bo" }, "export": export });
    let answer = operator_post(&server, "/admin/import/discord", &body).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let browser = Browser::start().await;
    let mia = member_in(&browser, &base, "darkroom", "mia", DESKTOP).await;
    shows(&mia, "Welcome to the darkroom channel!").await;
    let authors = mia.eval("[...document.querySelectorAll('.main .msg .who')].map(w => w.textContent)").await;
    let authors: Vec<String> = serde_json::from_value(authors).unwrap();
    // Unmapped authors by their Discord names, never as the importer.
    assert!(authors.contains(&"carol".to_string()) && authors.contains(&"bo".to_string()), "{authors:?}");
    assert!(!authors.iter().any(|a| a == "discord-import"), "{authors:?}");
    let page = mia.eval("document.querySelector('.main').innerText").await.to_string();
    assert!(page.contains("from Discord") && page.contains("👋 3") && page.contains("2 replies"), "{page}");
    // The replies are a thread; tags in member text stay text.
    click(&mia, ".main", "2 replies").await;
    mia.wait_for(
        "document.body.innerText.includes('Me too <b>see</b> my scan')",
        "the reply to the reply in the thread",
    )
    .await;
    if let Some(dir) = screenshots() {
        mia.screenshot(&dir.join("imported-desktop.png")).await;
    }
    let errors = unexpected_errors(&mia);
    assert!(errors.is_empty(), "{errors:?}");
    server.stop().await;
}
