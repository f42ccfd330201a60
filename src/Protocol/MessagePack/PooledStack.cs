using System.Buffers;
using System.Runtime.CompilerServices;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// A stack on an array rented from <see cref="ArrayPool{T}.Shared"/>, for the iterative tree walks: a message of
/// ordinary depth costs no allocation (a <see cref="Stack{T}"/> would cost two per message). Dispose returns the
/// array, cleared when <typeparamref name="T"/> holds references.
/// </summary>
internal ref struct PooledStack<T>
{
    private T[] _items;
    private int _count;

    public PooledStack(int capacity)
    {
        _items = ArrayPool<T>.Shared.Rent(capacity);
        _count = 0;
    }

    public readonly int Count => _count;

    public void Push(in T item)
    {
        if (_count == _items.Length)
        {
            var bigger = ArrayPool<T>.Shared.Rent(_items.Length * 2);
            _items.AsSpan(0, _count).CopyTo(bigger);
            Return(_items, _count);
            _items = bigger;
        }
        _items[_count++] = item;
    }

    /// <summary>The top item, by reference (valid until the next push).</summary>
    public readonly ref T Peek() => ref _items[_count - 1];

    public T Pop()
    {
        var item = _items[--_count];
        _items[_count] = default!;
        return item;
    }

    public void Dispose()
    {
        Return(_items, _count);
        _items = [];
        _count = 0;
    }

    private static void Return(T[] items, int used)
    {
        if (items.Length == 0)
        {
            return;
        }
        if (RuntimeHelpers.IsReferenceOrContainsReferences<T>())
        {
            items.AsSpan(0, used).Clear();
        }
        ArrayPool<T>.Shared.Return(items);
    }
}
