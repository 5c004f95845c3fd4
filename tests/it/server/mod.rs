//! The server (`src/server/`): request bodies, the per-connection guard, protective limits and
//! contained panics, and stream integrity on every provider.

mod body;
mod conn;
mod protection;
mod stream_integrity;
