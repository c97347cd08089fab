import CAMQP
import NotifyConfig

/// Where RabbitMQ's AMQP listener is and how to log in: shared by the consumer's and the publisher's configurations.
public struct AMQPServer: Sendable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var vhost: String

    public init(host: String, port: Int, user: String, password: String, vhost: String) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.vhost = vhost
    }

    /// From the process's RabbitMQ settings (NOTIFY_AMQP_HOST, NOTIFY_AMQP_PORT, NOTIFY_RABBIT_USER, …).
    public init(_ settings: RabbitSettings) {
        self.init(host: settings.amqpHost, port: settings.amqpPort, user: settings.user, password: settings.password, vhost: settings.vhost)
    }
}

/// Opening an AMQP connection with channel 1 open, shared by the consumer and the publisher.
enum AMQPConnect {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// A logged-in connection with channel 1 open; on failure nothing is left open.
    static func open(_ server: AMQPServer, heartbeatSeconds: Int) -> Result<amqp_connection_state_t, Failure> {
        guard let connection = amqp_new_connection() else { return .failure(Failure(description: "cannot allocate connection")) }
        guard let socket = amqp_tcp_socket_new(connection) else {
            amqp_destroy_connection(connection)
            return .failure(Failure(description: "cannot allocate socket"))
        }
        let opened = camqp_socket_open_timeout(socket, server.host, Int32(server.port), 3000)
        guard opened == AMQP_STATUS_OK.rawValue else {
            amqp_destroy_connection(connection)
            return .failure(Failure(description: "connect: \(String(cString: amqp_error_string2(opened)))"))
        }
        let login = camqp_login_plain(connection, server.vhost, 0, 131_072, Int32(heartbeatSeconds), server.user, server.password)
        guard login.reply_type == AMQP_RESPONSE_NORMAL else {
            amqp_destroy_connection(connection)
            return .failure(Failure(description: "login: \(AMQPConsumer.describe(login))"))
        }
        amqp_channel_open(connection, 1)
        let reply = amqp_get_rpc_reply(connection)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            close(connection)
            return .failure(Failure(description: "channel: \(AMQPConsumer.describe(reply))"))
        }
        return .success(connection)
    }

    static func close(_ connection: amqp_connection_state_t) {
        amqp_connection_close(connection, Int32(AMQP_REPLY_SUCCESS))
        amqp_destroy_connection(connection)
    }
}
