package commands

import "sluice/protocol"

// ErrPublish is PUBLISH's answer: clients do not publish. The only
// channel sluice publishes on is +switch-master, where a message from a
// client would send every Sentinel-aware client to an address of its
// choosing.
var ErrPublish = protocol.Error("ERR PUBLISH is not supported: sluice publishes only +switch-master, on leader changes")

func pubsubCommands() []protocol.Command {
	return []protocol.Command{
		{Name: "subscribe", Arity: -2, Flags: protocol.PubSub | protocol.NoMulti, Handler: subscribe, Group: "pubsub",
			Summary: "Receive the messages published on channels (sluice publishes +switch-master).",
			Args:    []protocol.Arg{{Name: "channel", Type: "string", Multiple: true}}},
		{Name: "psubscribe", Arity: -2, Flags: protocol.PubSub | protocol.NoMulti, Handler: subscribe, Group: "pubsub",
			Summary: "Receive the messages published on channels matching glob patterns.",
			Args:    []protocol.Arg{{Name: "pattern", Type: "pattern", Multiple: true}}},
		{Name: "unsubscribe", Arity: -1, Flags: protocol.PubSub | protocol.NoMulti, Handler: subscribe, Group: "pubsub",
			Summary: "Stop receiving channels' messages; all of them without arguments.",
			Args:    []protocol.Arg{{Name: "channel", Type: "string", Optional: true, Multiple: true}}},
		{Name: "punsubscribe", Arity: -1, Flags: protocol.PubSub | protocol.NoMulti, Handler: subscribe, Group: "pubsub",
			Summary: "Stop receiving patterns' messages; all of them without arguments.",
			Args:    []protocol.Arg{{Name: "pattern", Type: "pattern", Optional: true, Multiple: true}}},
		{Name: "publish", Arity: 3, Flags: protocol.Fast, Handler: publish, Group: "pubsub",
			Summary: "Refused: sluice publishes only +switch-master itself.",
			Args:    []protocol.Arg{str("channel"), str("message")}},
	}
}

// SUBSCRIBE channel [channel ...] | PSUBSCRIBE pattern [pattern ...] |
// UNSUBSCRIBE [channel ...] | PUNSUBSCRIBE [pattern ...]
// Each channel's confirmation is a reply of its own, sent by the client.
func subscribe(c *protocol.Client, args [][]byte) (any, error) {
	switch cmd := c.Server().Table().Lookup(args[0]); cmd.Name {
	case "subscribe":
		c.Subscribe(args[1:], false)
	case "psubscribe":
		c.Subscribe(args[1:], true)
	case "unsubscribe":
		c.Unsubscribe(args[1:], false)
	default:
		c.Unsubscribe(args[1:], true)
	}
	return protocol.NoReply, nil
}

// PUBLISH channel message
func publish(c *protocol.Client, args [][]byte) (any, error) { return nil, ErrPublish }
