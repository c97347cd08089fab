// libcurl for Swift: curl_easy_setopt and curl_easy_getinfo are variadic, so each argument type gets a wrapper.
#ifndef CCURL_SHIM_H
#define CCURL_SHIM_H
#include <curl/curl.h>

typedef size_t (*ccurl_read_callback)(char *buffer, size_t size, size_t nitems, void *userdata);

static inline CURLcode ccurl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode ccurl_setopt_read_callback(CURL *handle, ccurl_read_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_READFUNCTION, callback);
}
static inline CURLcode ccurl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
// The multi interface driven by epoll (curl_multi_socket_action): libcurl tells the socket callback which sockets to
// watch for what, and the timer callback when it next wants to run; the engine's thread waits in epoll_wait and runs
// only the transfers whose sockets are ready. The callbacks are C so that no Swift closure crosses into libcurl.
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

typedef struct {
    long timeout_ms;
    int changed;
} ccurl_timer;

static inline int ccurl_socket_callback(CURL *easy, curl_socket_t socket, int what, void *clientp, void *socketp) {
    (void)easy;
    (void)socketp;
    int epfd = (int)(intptr_t)clientp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, socket, NULL);
        return 0;
    }
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    event.data.fd = socket;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, socket, &event) != 0 && errno == ENOENT) {
        epoll_ctl(epfd, EPOLL_CTL_ADD, socket, &event);
    }
    return 0;
}

static inline int ccurl_timer_callback(CURLM *multi, long timeout_ms, void *clientp) {
    (void)multi;
    ccurl_timer *timer = (ccurl_timer *)clientp;
    timer->timeout_ms = timeout_ms;
    timer->changed = 1;
    return 0;
}

static inline CURLMcode ccurl_multi_use_epoll(CURLM *multi, int epfd, ccurl_timer *timer) {
    CURLMcode code = curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, ccurl_socket_callback);
    if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, (void *)(intptr_t)epfd);
    if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, ccurl_timer_callback);
    if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_TIMERDATA, timer);
    return code;
}

/// Waits for up to `capacity` (at most 64) ready descriptors; their numbers and curl's CURL_CSELECT_* masks.
static inline int ccurl_epoll_wait(int epfd, int *fds, int *masks, int capacity, int timeout_ms) {
    struct epoll_event events[64];
    if (capacity > 64) capacity = 64;
    int count = epoll_wait(epfd, events, capacity, timeout_ms);
    for (int index = 0; index < count; index++) {
        fds[index] = events[index].data.fd;
        masks[index] = ((events[index].events & EPOLLIN) ? CURL_CSELECT_IN : 0)
            | ((events[index].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0)
            | ((events[index].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
    }
    return count;
}

static inline int ccurl_epoll_watch_input(int epfd, int fd) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = EPOLLIN;
    event.data.fd = fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

static inline int ccurl_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
static inline void ccurl_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t written = write(fd, &one, sizeof one);
    (void)written;
}
static inline void ccurl_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t got = read(fd, &value, sizeof value);
    (void)got;
}
#endif
