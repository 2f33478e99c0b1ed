"""Session descriptions as real peers send them (SIPp, baresip, Asterisk, Cisco) and RFC 4566's example."""

from __future__ import annotations


def crlf(text: str) -> str:
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n"))


SIPP_DEFAULT = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")

BARESIP = crlf("""
v=0
o=- 1193452208 2730547447 IN IP4 192.168.1.20
s=-
c=IN IP4 192.168.1.20
t=0 0
m=audio 10094 RTP/AVP 96 9 0 8 101 102
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/48000
a=rtpmap:102 telephone-event/8000
a=fmtp:102 0-15
a=rtcp:10095
a=rtcp-rsize
a=sendrecv
a=label:1
a=ssrc:3486474396 cname:5c2e0f2d-8e63-4b5a-b2d1-2b7f7ba3c1c4
a=mid:0
a=ptime:20
m=video 10096 RTP/AVP 97
a=rtpmap:97 H264/90000
a=fmtp:97 packetization-mode=0;profile-level-id=42e01f
a=sendrecv
""")

ASTERISK = crlf("""
v=0
o=- 1880460286 1880460288 IN IP4 203.0.113.5
s=Asterisk
c=IN IP4 203.0.113.5
t=0 0
m=audio 13548 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")

ASTERISK_HOLD = ASTERISK.replace("a=sendrecv", "a=sendonly").replace("1880460288", "1880460289")
ASTERISK_INACTIVE = ASTERISK.replace("a=sendrecv", "a=inactive")

CISCO_HOLD = crlf("""
v=0
o=CiscoSystemsSIP-GW-UserAgent 4963 2296 IN IP4 198.51.100.7
s=SIP Call
c=IN IP4 0.0.0.0
t=0 0
m=audio 18012 RTP/AVP 0 101
c=IN IP4 0.0.0.0
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
""")

# RFC 4566 section 5 example plus the rarer line types and an unknown one.
EVERY_LINE = crlf("""
v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
p=+1 617 555-6011
c=IN IP4 224.2.17.12/127
b=CT:128
t=2873397496 2873404696
r=604800 3600 0 90000
z=2882844526 -1h 2898848070 0
k=prompt
a=recvonly
y=0123456789
m=audio 49170/2 RTP/AVP 0
i=voice
c=IN IP4 224.2.17.13/127
b=AS:64
k=clear:secret
a=custom-flag
a=x-vendor:some value with: colons
m=video 51372 RTP/AVP 99
a=rtpmap:99 h263-1998/90000
m=application 9 TCP/MSRP *
a=accept-types:text/plain
""")

FIXTURES = [SIPP_DEFAULT, BARESIP, ASTERISK, ASTERISK_HOLD, ASTERISK_INACTIVE, CISCO_HOLD, EVERY_LINE]
