//! edgenvr's wire contract, shared by the box, `nvrctl` and microcontroller sensor nodes.
#![no_std]
