//! Just enough DNS to verify a custom domain: one TXT query over UDP to the configured resolver
//! (or the first `nameserver` in /etc/resolv.conf). The wire format is small and fixed (RFC 1035);
//! writing it here avoids a resolver crate for one question. Encoding and parsing are pure and
//! tested, including a response builder that the tests' loopback DNS server uses.

use std::net::SocketAddr;
use std::time::Duration;

const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;

fn encode_name(out: &mut Vec<u8>, name: &str) -> Result<(), String> {
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("`{name}` is not a DNS name"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// A recursive TXT query for `name` with transaction `id`.
pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // standard query, recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    encode_name(&mut q, name)?;
    q.extend_from_slice(&TYPE_TXT.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| "a truncated DNS answer".to_owned())
}

/// Skips a (possibly compressed) name; returns the offset after it.
fn skip_name(b: &[u8], mut at: usize) -> Result<usize, String> {
    for _ in 0..128 {
        let len = *b.get(at).ok_or("a truncated DNS name")? as usize;
        if len == 0 {
            return Ok(at + 1);
        }
        if len & 0xC0 == 0xC0 {
            return Ok(at + 2);
        }
        at += 1 + len;
    }
    Err("a DNS name that does not end".into())
}

/// The TC flag: the answer was cut to fit a UDP datagram.
const FLAG_TRUNCATED: u16 = 0x0200;

/// Whether an answer was cut short to fit a UDP datagram (the TC flag). Its records are
/// incomplete — the verification token may be the one that did not fit — so the question is asked
/// again over TCP (RFC 7766).
pub fn is_truncated(b: &[u8]) -> bool {
    u16_at(b, 2).is_ok_and(|flags| flags & FLAG_TRUNCATED != 0)
}

/// The TXT strings of an answer to query `id` (each record's strings joined, as TXT verification
/// tokens are read). An NXDOMAIN or an empty answer is `Ok(vec![])`.
pub fn parse_txt_answer(id: u16, b: &[u8]) -> Result<Vec<String>, String> {
    if u16_at(b, 0)? != id {
        return Err("a DNS answer to another question".into());
    }
    let flags = u16_at(b, 2)?;
    let rcode = flags & 0x000F;
    if rcode == 3 {
        return Ok(Vec::new());
    }
    if rcode != 0 {
        return Err(format!("the resolver answered with error code {rcode}"));
    }
    let questions = u16_at(b, 4)?;
    let answers = u16_at(b, 6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(b, at)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        at = skip_name(b, at)?;
        let kind = u16_at(b, at)?;
        let len = u16_at(b, at + 8)? as usize;
        let data = b
            .get(at + 10..at + 10 + len)
            .ok_or("a truncated DNS record")?;
        at += 10 + len;
        if kind != TYPE_TXT {
            continue;
        }
        let mut text = String::new();
        let mut i = 0;
        while i < data.len() {
            let n = data[i] as usize;
            let part = data.get(i + 1..i + 1 + n).ok_or("a truncated TXT string")?;
            text.push_str(&String::from_utf8_lossy(part));
            i += 1 + n;
        }
        out.push(text);
    }
    Ok(out)
}

/// The answer a resolver would give to `query` with these TXT values (tests, and anyone wanting a
/// loopback DNS stand-in).
pub fn encode_txt_response(query: &[u8], values: &[&str]) -> Vec<u8> {
    let question_end = skip_name(query, 12).map(|e| e + 4).unwrap_or(query.len());
    let mut r = Vec::new();
    r.extend_from_slice(&query[0..2]);
    r.extend_from_slice(&[0x81, if values.is_empty() { 0x83 } else { 0x80 }]);
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(values.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&query[12..question_end]);
    for v in values {
        r.extend_from_slice(&[0xC0, 12]); // the question's name
        r.extend_from_slice(&TYPE_TXT.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&60u32.to_be_bytes());
        let bytes = v.as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(255).collect();
        let len: usize = chunks.iter().map(|c| c.len() + 1).sum();
        r.extend_from_slice(&(len as u16).to_be_bytes());
        for c in chunks {
            r.push(c.len() as u8);
            r.extend_from_slice(c);
        }
    }
    r
}

/// The system's first resolver, from /etc/resolv.conf.
pub fn system_resolver() -> Option<SocketAddr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
}

/// Asks `resolver` for the TXT records of `name`.
pub async fn txt(
    resolver: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let id: u16 = {
        let mut b = [0u8; 2];
        getrandom::fill(&mut b).map_err(|_| "no randomness available")?;
        u16::from_be_bytes(b)
    };
    let query = encode_query(id, name)?;
    let bind = if resolver.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket
        .send_to(&query, resolver)
        .await
        .map_err(|e| format!("cannot reach the resolver {resolver}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(timeout, async {
        loop {
            let (n, from) = socket.recv_from(&mut buf).await?;
            // Only the resolver's answer counts (anything else on the port is noise or spoofing).
            if from == resolver {
                return Ok::<usize, std::io::Error>(n);
            }
        }
    })
    .await
    .map_err(|_| {
        format!(
            "the resolver {resolver} did not answer within {}s",
            timeout.as_secs()
        )
    })?
    .map_err(|e| format!("reading the resolver's answer: {e}"))?;
    let answer = &buf[..n];
    if u16_at(answer, 0) == Ok(id) && is_truncated(answer) {
        return parse_txt_answer(id, &exchange_tcp(resolver, &query, timeout).await?);
    }
    parse_txt_answer(id, answer)
}

/// One question over TCP: each message is preceded by its length (RFC 1035 §4.2.2).
async fn exchange_tcp(
    resolver: SocketAddr,
    query: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(resolver).await?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            format!(
                "the resolver {resolver} did not answer over TCP within {}s (its UDP answer was truncated)",
                timeout.as_secs()
            )
        })?
        .map_err(|e| format!("asking the resolver {resolver} over TCP (its UDP answer was truncated): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_answers_round_trip() {
        let q = encode_query(0xBEEF, "_enclii-challenge.app.example.com").unwrap();
        assert_eq!(&q[0..2], &[0xBE, 0xEF]);
        assert_eq!(q[12], 17, "the first label's length");
        let long = "x".repeat(300);
        let answer = encode_txt_response(&q, &["enclii-verify=abc", &long]);
        assert_eq!(
            parse_txt_answer(0xBEEF, &answer).unwrap(),
            vec!["enclii-verify=abc".to_owned(), long]
        );
        assert_eq!(
            parse_txt_answer(0xBEEF, &encode_txt_response(&q, &[])).unwrap(),
            Vec::<String>::new()
        );
        assert!(
            parse_txt_answer(0x0001, &answer).is_err(),
            "another question's answer"
        );
        assert!(
            parse_txt_answer(0xBEEF, &answer[..20]).is_err(),
            "truncated"
        );
        assert!(!is_truncated(&answer));
        let mut cut = answer.clone();
        cut[2] |= 0x02;
        assert!(is_truncated(&cut), "the TC flag");
        assert!(!is_truncated(&answer[..2]), "too short to say");
        assert!(encode_query(1, "a..b").is_err());
        assert!(encode_query(1, &format!("{}.com", "a".repeat(64))).is_err());
    }

    /// A resolver whose UDP answer is truncated (and carries nothing) and whose TCP answer has the
    /// token: the token is found.
    #[tokio::test]
    async fn a_truncated_answer_is_asked_again_over_tcp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // TCP and UDP ports are separate: bind UDP, then TCP on the same port (retry if taken).
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let resolver = udp.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = udp.recv_from(&mut buf).await.unwrap();
            let mut cut = encode_txt_response(&buf[..n], &[]);
            cut[2] |= 0x02; // TC
            cut[3] &= 0xF0; // NOERROR, no records: what fitted
            udp.send_to(&cut, from).await.unwrap();
        });
        tokio::spawn(async move {
            let (mut stream, _) = tcp.accept().await.unwrap();
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await.unwrap();
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut query).await.unwrap();
            let answer = encode_txt_response(&query, &["v=spf1 -all", "enclii-verify=abc"]);
            stream
                .write_all(&(answer.len() as u16).to_be_bytes())
                .await
                .unwrap();
            stream.write_all(&answer).await.unwrap();
        });
        let found = txt(
            resolver,
            "_enclii-challenge.app.example.com",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(found, ["v=spf1 -all", "enclii-verify=abc"]);
    }
}
