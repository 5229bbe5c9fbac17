//! Crash safety of `omg vendor serve`: the service is killed with SIGKILL in the middle of a
//! stream of activations from concurrent clients and restarted on the same SQLite database.
//! Afterwards every acknowledged activation (HTTP 200 received) is recorded exactly once, no
//! activation is recorded without its nonce consumed, the audit table agrees with the
//! activations, and a request whose answer was lost in the crash is refused as a reused nonce
//! when sent again if (and only if) it had been committed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use omg_protocol::base64;
use omg_protocol::key_release::HpkeKeyPair;
use omg_protocol::token::{Claims, SoftwareComponent, Token};
use omg_protocol::{ContentKey, generate_signing_key, public_key_sec1, ueid};
use omg_vendor::{OsRng, Policy, Store};
use serde_json::{Value, json};
use support::{Server, TempDir, vendor_keygen};

const MODEL: &str = "durable-model";
const MEASUREMENT: [u8; 32] = [0x5a; 32];
const CLIENTS: usize = 4;
/// Acknowledged activations before the crash.
const BEFORE_CRASH: usize = 40;
/// Acknowledged activations per client after the restart.
const AFTER_RESTART: usize = 10;
/// The admin token of the service: each client enrols its devices through the admin API.
const ADMIN_TOKEN: &str = "durability-admin";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What became of an HTTP request.
enum Reply {
    /// A complete answer.
    Answered(u16, Value),
    /// The connection was refused: the request never left.
    NotSent,
    /// Sent (perhaps partly), but no complete answer came back.
    Lost,
}

fn send(stream: &mut TcpStream, addr: &str, path: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\
         \r\n{body}",
        body.len()
    )
}

fn post(addr: &str, path: &str, body: &str) -> Reply {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return Reply::NotSent;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    if send(&mut stream, addr, path, body).is_err() || stream.read_to_string(&mut answer).is_err() {
        return Reply::Lost;
    }
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        return Reply::Lost;
    };
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    match (status, serde_json::from_str(body)) {
        (Some(status), Ok(value)) => Reply::Answered(status, value),
        _ => Reply::Lost,
    }
}

/// One device's activation request.
#[derive(Clone, Debug)]
struct Attempt {
    ueid: String,
    nonce: String,
    body: String,
}

/// Enrols a new device, asks for a challenge and builds an activation request for that
/// device over its nonce; `None` if the service is gone.
fn prepare(addr: &str) -> Option<Attempt> {
    let device = generate_signing_key(&mut OsRng::default());
    let enroll =
        json!({"device_public_key": base64::encode(public_key_sec1(device.verifying_key()))});
    match post(addr, "/v1/devices/enroll", &enroll.to_string()) {
        Reply::Answered(200, _) => {}
        Reply::Answered(status, value) => panic!("enrolment answered {status}: {value}"),
        Reply::NotSent | Reply::Lost => return None,
    }
    let challenge = match post(addr, "/v1/challenge", "") {
        Reply::Answered(200, value) => value,
        Reply::Answered(status, value) => panic!("challenge answered {status}: {value}"),
        Reply::NotSent | Reply::Lost => return None,
    };
    let nonce = base64::decode(challenge["nonce"].as_str().unwrap()).unwrap();
    let enclave = HpkeKeyPair::generate(&mut OsRng::default());
    let claims = Claims::new(
        device.verifying_key(),
        &nonce,
        [0x33; 32],
        vec![SoftwareComponent {
            measurement_type: Some("enclave".into()),
            measurement_value: MEASUREMENT.to_vec(),
            version: Some("1".into()),
            signer_id: [0x22; 32].to_vec(),
            measurement_desc: Some("sha-256".into()),
        }],
        enclave.public_key_hash(),
    );
    let token = Token::sign(&claims, &device).unwrap();
    let body = json!({
        "token": base64::encode(&token),
        "device_public_key": base64::encode(public_key_sec1(device.verifying_key())),
        "model_id": MODEL,
        "version": 1,
        "enclave_public_key": base64::encode(enclave.public_key.to_bytes()),
    });
    Some(Attempt {
        ueid: hex(&ueid(device.verifying_key())),
        nonce: hex(&nonce),
        body: body.to_string(),
    })
}

/// What one client saw.
#[derive(Default)]
struct Ledger {
    /// Answered 200.
    acknowledged: Vec<Attempt>,
    /// Sent, answer lost (at most one per client: it stops at the first failure).
    in_doubt: Vec<Attempt>,
}

/// Streams activations until `limit` are acknowledged, `stop` is set, or the service is gone.
fn stream(addr: &str, limit: usize, stop: &AtomicBool, acks: &AtomicUsize) -> Ledger {
    let mut ledger = Ledger::default();
    while ledger.acknowledged.len() < limit && !stop.load(Ordering::Relaxed) {
        let Some(attempt) = prepare(addr) else {
            break;
        };
        match post(addr, "/v1/activate", &attempt.body) {
            Reply::Answered(200, answer) => {
                assert!(answer["licence"].is_string() && answer["key_release"].is_string());
                ledger.acknowledged.push(attempt);
                acks.fetch_add(1, Ordering::Relaxed);
            }
            Reply::Answered(status, answer) => {
                panic!("a fresh activation was answered {status}: {answer}")
            }
            Reply::NotSent => break,
            Reply::Lost => {
                ledger.in_doubt.push(attempt);
                break;
            }
        }
    }
    ledger
}

/// Runs `CLIENTS` streaming clients against `addr` while `during` runs on this thread.
fn with_clients(addr: &str, limit: usize, during: impl FnOnce(&AtomicUsize)) -> Ledger {
    let stop = AtomicBool::new(false);
    let acks = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| scope.spawn(|| stream(addr, limit, &stop, &acks)))
            .collect();
        during(&acks);
        stop.store(true, Ordering::Relaxed);
        let mut all = Ledger::default();
        for client in clients {
            let ledger = client.join().unwrap();
            all.acknowledged.extend(ledger.acknowledged);
            all.in_doubt.extend(ledger.in_doubt);
        }
        all
    })
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn read_only(db: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn activations_of(db: &Path, ueid: &str) -> i64 {
    read_only(db)
        .query_row(
            "SELECT COUNT(*) FROM activations WHERE ueid = ?1",
            [ueid],
            |r| r.get(0),
        )
        .unwrap()
}

fn nonce_used(db: &Path, nonce: &str) -> bool {
    read_only(db)
        .query_row("SELECT used FROM nonces WHERE nonce = ?1", [nonce], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
        == 1
}

/// The service database with one model whose policy allows `MEASUREMENT` on any number of
/// devices.
fn prepare_db(db: &Path) {
    let now = omg_vendor::http::system_now();
    let policy = Policy::from_toml(&format!(
        "allowed_measurements = [\"{}\"]\nmax_devices = 1000000\nnot_after = {}\n",
        hex(&MEASUREMENT),
        now + 86_400
    ))
    .unwrap();
    let store = Store::open(db).unwrap();
    store.put_model(MODEL, &policy, now).unwrap();
    store
        .add_model_version(MODEL, 1, &ContentKey::generate(&mut OsRng::default()), now)
        .unwrap();
}

#[test]
fn sigkill_mid_stream_loses_and_duplicates_no_activation() {
    let dir = TempDir::new("durability");
    let keys = vendor_keygen(&dir);
    let db = dir.path("vendor.sqlite");
    prepare_db(&db);
    let token_file = dir.path("admin-token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    let admin = ["--admin-token-file", token_file.to_str().unwrap()];

    // Phase 1: stream, and SIGKILL the service mid-stream once BEFORE_CRASH activations are
    // acknowledged and one more is committed whose answer is never read.
    let server = Server::start(&db, &keys, &admin);
    let addr = server.addr.clone();
    let mut unread = None;
    let before = with_clients(&addr, usize::MAX, |acks| {
        wait_for("the first acknowledged activations", || {
            acks.load(Ordering::Relaxed) >= BEFORE_CRASH
        });
        let attempt = prepare(&addr).expect("the service is up");
        let mut stream = TcpStream::connect(&addr).unwrap();
        send(&mut stream, &addr, "/v1/activate", &attempt.body).unwrap();
        wait_for("the unread activation to be committed", || {
            activations_of(&db, &attempt.ueid) == 1
        });
        server.kill();
        unread = Some((attempt, stream));
    });
    let (unread, unread_stream) = unread.unwrap();
    drop(unread_stream);
    assert!(before.acknowledged.len() >= BEFORE_CRASH);

    // Which of the requests in doubt did the crashed service commit?
    let mut in_doubt = before.in_doubt.clone();
    in_doubt.push(unread.clone());
    let committed: Vec<bool> = in_doubt
        .iter()
        .map(|a| activations_of(&db, &a.ueid) == 1)
        .collect();
    assert_eq!(
        committed.last(),
        Some(&true),
        "the unread activation is lost"
    );

    // Restart on the same database and send every request in doubt again: a committed one is
    // refused as a reused nonce, one that never was committed is activated now (once).
    let server = Server::start(&db, &keys, &admin);
    let addr = server.addr.clone();
    let mut acknowledged = before.acknowledged.clone();
    let mut committed_unacknowledged = Vec::new();
    let mut reused_refusals = 0;
    for (attempt, was_committed) in in_doubt.iter().zip(&committed) {
        match post(&addr, "/v1/activate", &attempt.body) {
            Reply::Answered(403, answer) if *was_committed => {
                assert_eq!(answer["reason"], "reused_nonce", "{answer}");
                committed_unacknowledged.push(attempt.clone());
                reused_refusals += 1;
            }
            Reply::Answered(200, _) if !*was_committed => acknowledged.push(attempt.clone()),
            Reply::Answered(status, answer) => panic!(
                "resent request (committed before the crash: {was_committed}) answered \
                 {status}: {answer}"
            ),
            Reply::NotSent | Reply::Lost => panic!("the restarted service did not answer"),
        }
    }
    // Replaying an acknowledged request after the restart activates nothing either.
    for attempt in before.acknowledged.iter().take(5) {
        match post(&addr, "/v1/activate", &attempt.body) {
            Reply::Answered(403, answer) => {
                assert_eq!(answer["reason"], "reused_nonce", "{answer}");
                reused_refusals += 1;
            }
            _ => panic!("a replayed acknowledged request was not refused"),
        }
    }

    // Phase 2: the restarted service goes on.
    let after = with_clients(&addr, AFTER_RESTART, |acks| {
        wait_for("the activations after the restart", || {
            acks.load(Ordering::Relaxed) >= CLIENTS * AFTER_RESTART
        });
    });
    assert!(
        after.in_doubt.is_empty(),
        "requests failed after the restart"
    );
    assert_eq!(after.acknowledged.len(), CLIENTS * AFTER_RESTART);
    acknowledged.extend(after.acknowledged);
    server.kill();

    // Every acknowledged activation is recorded exactly once, and besides them only the
    // committed ones whose answer was lost.
    let store = Store::open(&db).unwrap();
    let rows = store.list_activations().unwrap();
    let mut per_device: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        assert_eq!((row.model_id.as_str(), row.version), (MODEL, 1));
        *per_device.entry(row.ueid.as_str()).or_default() += 1;
    }
    let expected: BTreeSet<&str> = acknowledged
        .iter()
        .chain(&committed_unacknowledged)
        .map(|a| a.ueid.as_str())
        .collect();
    assert_eq!(
        expected.len(),
        acknowledged.len() + committed_unacknowledged.len()
    );
    for attempt in &acknowledged {
        assert_eq!(
            per_device.get(attempt.ueid.as_str()),
            Some(&1),
            "acknowledged activation of {} recorded {:?} times",
            attempt.ueid,
            per_device.get(attempt.ueid.as_str())
        );
    }
    assert_eq!(
        per_device.keys().copied().collect::<BTreeSet<_>>(),
        expected,
        "activations recorded that no client sent"
    );
    assert_eq!(
        rows.len(),
        expected.len(),
        "an activation is recorded twice"
    );

    // No activation without its nonce consumed; no nonce consumed without an activation (the
    // only refusals here are reused nonces, which consume nothing new).
    for attempt in acknowledged.iter().chain(&committed_unacknowledged) {
        assert!(
            nonce_used(&db, &attempt.nonce),
            "nonce of {} unused",
            attempt.ueid
        );
    }
    let used: i64 = read_only(&db)
        .query_row("SELECT COUNT(*) FROM nonces WHERE used = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(used, rows.len() as i64);

    // The audit table: one "activated" row per activation (same devices), one refusal per
    // reused nonce, nothing else.
    let audit = store.audit_log().unwrap();
    let mut activated: Vec<&str> = audit
        .iter()
        .filter(|a| a.outcome == "activated")
        .map(|a| a.ueid.as_deref().unwrap())
        .collect();
    activated.sort_unstable();
    let mut recorded: Vec<&str> = rows.iter().map(|r| r.ueid.as_str()).collect();
    recorded.sort_unstable();
    assert_eq!(activated, recorded);
    let refused: Vec<_> = audit.iter().filter(|a| a.outcome == "refused").collect();
    assert_eq!(refused.len(), reused_refusals);
    assert!(
        refused
            .iter()
            .all(|a| a.reason.as_deref() == Some("reused_nonce"))
    );
    assert_eq!(audit.len(), rows.len() + reused_refusals);

    eprintln!(
        "{} activations acknowledged, {} requests in doubt at the crash ({} committed), {} \
         activations recorded",
        acknowledged.len(),
        in_doubt.len(),
        committed.iter().filter(|c| **c).count(),
        rows.len()
    );
}
