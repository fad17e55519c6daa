//! A stream's open shards and the hash-key arithmetic Kinesis routes records by.

use md5::{Digest, Md5};

use crate::aws::{errors::from_sdk, AwsError};

/// An open shard: its id and the hash-key range it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    pub start: u128,
    pub end: u128,
}

/// The 128-bit hash key of a partition key: Kinesis maps MD5(key), read as a big-endian
/// integer, to the shard whose range holds it (API reference, PutRecords).
pub fn hash_key(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

/// The shard a partition key lands on.
pub fn shard_for_key(shards: &[Shard], key: &str) -> usize {
    shard_for_hash(shards, hash_key(key))
}

/// The shard owning a hash key.
pub fn shard_for_hash(shards: &[Shard], h: u128) -> usize {
    shards.iter().position(|s| s.start <= h && h <= s.end).unwrap_or(0)
}

/// Reads the open shards of a stream (ListShards; closed parents after a reshard are skipped).
pub async fn open_shards(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<Vec<Shard>, AwsError> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client.list_shards();
        req = match &token {
            Some(t) => req.next_token(t),
            None => req.stream_name(stream),
        };
        let out = req.send().await.map_err(|e| from_sdk("kinesis:ListShards", stream, e))?;
        for s in out.shards() {
            if s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some() {
                continue;
            }
            let range = s.hash_key_range();
            let p = |v: Option<&str>| v.and_then(|v| v.parse::<u128>().ok()).unwrap_or(0);
            shards.push(Shard {
                id: s.shard_id().to_string(),
                start: p(range.map(|r| r.starting_hash_key())),
                end: p(range.map(|r| r.ending_hash_key())),
            });
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    shards.sort_by_key(|s| s.start);
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_the_shard_owning_their_hash() {
        let half = u128::MAX / 2;
        let shards = vec![
            Shard { id: "a".into(), start: 0, end: half },
            Shard { id: "b".into(), start: half + 1, end: u128::MAX },
        ];
        // MD5("a") = 0cc175b9..., below half; MD5("b") = 92eb5ffe..., above half.
        assert_eq!(shard_for_key(&shards, "a"), 0);
        assert_eq!(shard_for_key(&shards, "b"), 1);
        assert_eq!(hash_key("a") >> 96, 0x0cc175b9);
    }
}
