//! The whole-image sha256, computed on the reader's thread or on a helper thread.
//!
//! Hashing the whole image repeats work the chunk hashes already did for the data (and adds the
//! zero runs), so on a multi-core device it runs beside decompression: data is handed over in
//! batches of up to [`BATCH`] bytes through a bounded channel, which bounds the memory to a few
//! batches. The result is the same digest either way.

use sha2::{Digest, Sha256};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// 64 KiB: with the queue, 256 KiB in flight at most; the install sits near its 16 MiB budget.
const BATCH: usize = 64 * 1024;
/// Batches in flight between the reader and the hashing thread (two keep it busy; memory counts).
const QUEUE: usize = 2;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// What the hashing thread receives.
#[derive(Debug)]
pub enum Message {
    Data(Vec<u8>),
    Zeros(u64),
}

/// The sha256 of a whole image fed as data and zero runs (see the module doc).
pub enum ImageHash {
    Inline(Sha256),
    Threaded {
        batch: Vec<u8>,
        tx: Option<SyncSender<Message>>,
        spare: Receiver<Vec<u8>>,
        handle: Option<JoinHandle<[u8; 32]>>,
    },
}

impl std::fmt::Debug for ImageHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageHash::Inline(_) => "ImageHash::Inline",
            ImageHash::Threaded { .. } => "ImageHash::Threaded",
        })
    }
}

fn hash_zeros(hasher: &mut Sha256, mut len: u64) {
    while len > 0 {
        let n = len.min(ZEROS.len() as u64) as usize;
        hasher.update(&ZEROS[..n]);
        len -= n as u64;
    }
}

impl ImageHash {
    pub fn new(threaded: bool) -> ImageHash {
        if !threaded {
            return ImageHash::Inline(Sha256::new());
        }
        let (tx, rx) = sync_channel::<Message>(QUEUE);
        let (spare_tx, spare) = sync_channel::<Vec<u8>>(QUEUE);
        let handle = std::thread::Builder::new()
            .name("image-hash".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                for message in rx {
                    match message {
                        Message::Data(batch) => {
                            hasher.update(&batch);
                            // Hand the buffer back for reuse; if the reader is gone, drop it.
                            let _ = spare_tx.try_send(batch);
                        }
                        Message::Zeros(len) => hash_zeros(&mut hasher, len),
                    }
                }
                hasher.finalize().into()
            });
        match handle {
            Ok(handle) => ImageHash::Threaded {
                batch: Vec::with_capacity(BATCH),
                tx: Some(tx),
                spare,
                handle: Some(handle),
            },
            // No threads available (tiny systems): hash inline.
            Err(_) => ImageHash::Inline(Sha256::new()),
        }
    }

    pub fn data(&mut self, bytes: &[u8]) {
        match self {
            ImageHash::Inline(hasher) => hasher.update(bytes),
            ImageHash::Threaded { batch, .. } => {
                if batch.len() + bytes.len() > BATCH {
                    self.flush();
                }
                if let ImageHash::Threaded { batch, .. } = self {
                    batch.extend_from_slice(bytes);
                }
            }
        }
    }

    pub fn zeros(&mut self, len: u64) {
        match self {
            ImageHash::Inline(hasher) => hash_zeros(hasher, len),
            ImageHash::Threaded { .. } => {
                self.flush();
                self.send(Message::Zeros(len));
            }
        }
    }

    fn flush(&mut self) {
        if let ImageHash::Threaded { batch, spare, .. } = self {
            if batch.is_empty() {
                return;
            }
            let next = spare.try_recv().map(|mut b| {
                b.clear();
                b
            });
            let full = std::mem::replace(batch, next.unwrap_or_else(|_| Vec::with_capacity(BATCH)));
            self.send(Message::Data(full));
        }
    }

    fn send(&mut self, message: Message) {
        if let ImageHash::Threaded { tx: Some(tx), .. } = self {
            // A send only fails if the hashing thread died; `finish` then reports a mismatch.
            let _ = tx.send(message);
        }
    }

    /// The digest of everything hashed; `None` if the hashing thread died.
    pub fn finish(mut self) -> Option<[u8; 32]> {
        self.flush();
        match self {
            ImageHash::Inline(hasher) => Some(hasher.finalize().into()),
            ImageHash::Threaded { tx, handle, .. } => {
                // Closing the channel ends the thread's loop.
                drop(tx);
                handle?.join().ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threaded_and_inline_agree() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut digests = Vec::new();
        for threaded in [false, true] {
            let mut hash = ImageHash::new(threaded);
            for piece in data.chunks(70_000) {
                hash.data(piece);
                hash.zeros(5000);
            }
            digests.push(hash.finish().unwrap());
        }
        assert_eq!(digests[0], digests[1]);
    }
}
