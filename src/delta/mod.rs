//! Delta transfer: sum headers, block signatures, the sender's matcher,
//! the uncompressed token codec and the receiver's patcher.
//!
//! Layer: delta (L2, pure compute and codecs). Uses `checksum` and `wire`;
//! does no I/O of its own (the patcher writes to and reads from what the
//! caller passes). Mirrors upstream generator.c (`sum_sizes_sqroot`,
//! `generate_and_send_sums`), match.c, token.c (`simple_*_token`) and
//! receiver.c (`receive_data`).
//!
//! The pieces in transfer order:
//!
//! ```text
//! generator: SumHead::for_file -> SignatureBuilder -> SumHead::encode + Signature::encode_blocks
//! sender:    SumHead::decode + Signature::decode_blocks -> Matcher -> encode_literal/encode_block/encode_end
//! receiver:  decode_token_header -> Patcher (literal / block) -> Patcher::finish == sender's checksum
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod compress;
mod matcher;
mod patch;
mod signature;
mod skip;
mod sum_head;
mod token;

pub use compress::{
    CToken, Compression, DEFLATED_DATA, END_FLAG, MAX_DATA_COUNT, TOKEN_LONG, TOKEN_REL,
    TOKENRUN_LONG, TOKENRUN_REL, TokenCompressor, TokenDecompressor,
};
pub use matcher::{MatchStats, Matcher, Token};
pub use patch::{BasisRead, PatchError, Patcher};
pub use signature::{BlockSum, Signature, SignatureBuilder};
pub use skip::{DEFAULT_SKIP_COMPRESS, SkipCompress};
pub use sum_head::{
    BLOCK_SIZE, MAX_BLOCK_SIZE, OLD_MAX_BLOCK_SIZE, SHORT_SUM_LENGTH, SUM_LENGTH, SumHead,
    max_block_size,
};
pub use token::{
    CHUNK_SIZE, TokenHeader, decode_token_header, encode_block, encode_end, encode_literal,
};
