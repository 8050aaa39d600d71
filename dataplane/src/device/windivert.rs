//! Windows: the WinDivert device (to be filled in).
