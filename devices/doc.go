// Package devices is the device side of Roost: the registry of constrained
// sensors and controllers (JID, pre-shared key, kind, metadata), the DTLS
// datagram binding that turns an authenticated DTLS association into a
// routed session, and helpers for XEP-0050 command IQs.
//
// It is empty until the devices issue lands; see DESIGN.md, "Devices over
// DTLS", for the binding it will implement.
package devices
