//! `nvrctl`, the host side of edgenvr: decodes and shows a box's state live, lists recordings and
//! pulls clips. The binary is a thin wrapper over [`cli`].

pub mod cli;
