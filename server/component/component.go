// Package component is the accept side of XEP-0114: external components
// (a Zigbee, Modbus or MQTT bridge running beside Roost on the gateway)
// connect to listen.component, authenticate with their domain's shared
// secret (config "components") and exchange stanzas with local users.
package component
