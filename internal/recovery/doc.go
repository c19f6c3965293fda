// Package recovery brings a damaged host back to its last clean snapshot:
// it judges each snapshot's health together with the alerts the host's
// watcher raised, chooses the snapshot to go back to, repairs the live tree
// in place (restoring only what differs and moving everything else into a
// quarantine, never deleting), and verifies what it wrote.
//
// # Repair
//
// Repair walks the snapshot's tree and the live tree together, directory by
// directory, entries in name order, holding each live directory open and
// naming entries only relative to it: no symbolic link in the live tree is
// ever followed, since whoever damaged the tree may have planted them. A
// regular file whose size, mtime, ctime, inode and device equal its node's
// was not touched since the backup (user space cannot set a ctime) and
// costs one fstatat; any other file of the right size is read in the
// snapshot's blob boundaries and each piece hashed with the repository's
// blob ID function. What differs is moved into the quarantine and restored
// through the restorer's content pipeline; what the snapshot lacks is moved
// into the quarantine; metadata alone is fixed in place. Every file written
// is read back and verified against the snapshot's blob IDs.
package recovery
